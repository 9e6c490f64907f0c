#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: notify
short_description: Send one message to a chat webhook and by email (SMTP with STARTTLS and login)
version_added: 0.1.0
description:
  - Sends O(subject) and O(text) to every channel configured - a Slack-compatible webhook (a JSON POST with a
    C(text) field, plus C(subject) and O(data)) and email over SMTP - and reports what happened on each. Every
    channel is tried whatever the others did.
  - Email uses STARTTLS by default (O(smtp_security)), verifies the server's certificate and host name, and sends
    the password only over TLS; implicit TLS (port 465) and plain SMTP to a relay that needs no login are the
    other choices.
  - The webhook's URL is a secret (a Slack webhook carries its token in the path) - it is never printed, and
    messages name it by scheme and host only. Redirects are not followed.
  - The roles of this collection (backup, and the disaster recovery and maintenance roles) send their summaries
    through it.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
attributes:
  check_mode:
    support: full
    details:
      - Checks the options and reports the channels it would send to, and sends nothing.
  diff_mode:
    support: none
options:
  subject:
    description: The message's subject (the email subject; the first, bold line on a webhook).
    type: str
    required: true
  text:
    description: The message itself, as plain text (Markdown that chat tools render reads well in email too).
    type: str
    required: true
  data:
    description: Structured details sent with the webhook message as its C(data) field (not in email).
    type: dict
  fail_on:
    description:
      - When the task fails - V(any) channel failing, V(all) of them failing, or V(never) (failures are then only
        warnings and C(channels) entries).
    type: str
    choices: [any, all, never]
    default: any
  webhook_url:
    description: The webhook to POST to; a secret.
    type: str
  webhook_headers:
    description: Extra HTTP headers (an Authorization header, for example); secrets too.
    type: dict
  timeout:
    description: Seconds to wait for the webhook.
    type: float
    default: 10
  smtp_host:
    description: The mail server; email is sent only when this is set.
    type: str
  smtp_port:
    description: Its port - 587 for STARTTLS, 465 for implicit TLS, 25 for a relay.
    type: int
    default: 587
  smtp_security:
    description: V(starttls), V(tls) (implicit, from the first byte) or V(none) (no encryption and no login).
    type: str
    choices: [starttls, tls, none]
    default: starttls
  smtp_username:
    description: Login name, when the server requires one.
    type: str
  smtp_password:
    description: Its password; never logged or returned.
    type: str
  smtp_from:
    description: The sender address.
    type: str
  smtp_to:
    description: Recipient addresses.
    type: list
    elements: str
  smtp_timeout:
    description: Seconds to wait for the mail server at each step.
    type: float
    default: 30
  validate_certs:
    description: Verify the certificates of the webhook and the mail server.
    type: bool
    default: true
  ca_cert:
    description: CA bundle to verify them with, instead of the system's.
    type: path
seealso:
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
- name: Tell the on-call channel and the team's mailbox that the backups ran
  keel.ops.notify:
    subject: "Backups on {{ inventory_hostname }}: 3 saved, 0 failed"
    text: "{{ summary_text }}"
    data: "{{ summary }}"
    webhook_url: "{{ vault_slack_webhook }}"
    smtp_host: smtp.example.com
    smtp_username: backups@example.com
    smtp_password: "{{ vault_smtp_password }}"
    smtp_from: backups@example.com
    smtp_to: [ops@example.com]
  delegate_to: localhost
"""

RETURN = r"""
channels:
  description: One entry per channel - C(channel) (V(webhook) or V(email)), C(target) (the webhook's scheme and
    host, or the mail server's host and port), C(sent), and C(error) or null.
  returned: always
  type: list
  elements: dict
sent:
  description: How many channels took the message.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._notify.notify import NotifyConfig, notify

ARGUMENT_SPEC = dict(
    subject=dict(type="str", required=True),
    text=dict(type="str", required=True),
    data=dict(type="dict"),
    fail_on=dict(type="str", choices=["any", "all", "never"], default="any"),
    webhook_url=dict(type="str", no_log=True),
    webhook_headers=dict(type="dict", no_log=True),
    timeout=dict(type="float", default=10),
    smtp_host=dict(type="str"),
    smtp_port=dict(type="int", default=587),
    smtp_security=dict(type="str", choices=["starttls", "tls", "none"], default="starttls"),
    smtp_username=dict(type="str"),
    smtp_password=dict(type="str", no_log=True),
    smtp_from=dict(type="str"),
    smtp_to=dict(type="list", elements="str"),
    smtp_timeout=dict(type="float", default=30),
    validate_certs=dict(type="bool", default=True),
    ca_cert=dict(type="path"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    with module_failures(module, "notify"):
        result = notify(NotifyConfig.from_params(module.params), Reporter(module.check_mode, module.warn))
        if result.pop("failed", False):
            module.fail_json(**result)
        module.exit_json(**result)


if __name__ == "__main__":
    main()
