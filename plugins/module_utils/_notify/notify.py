# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""keel.ops.notify: one message to every channel configured (a chat webhook, email), each tried whatever the
others did, with what happened per channel; the task fails when any (or, by choice, every) channel failed."""

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._notify import smtp, webhook

FAIL_ON = ("any", "all", "never")


class NotifyConfig:
    def __init__(self, **options):
        self.__dict__.update(options)

    @classmethod
    def from_params(cls, params):
        config = cls(**params)
        if not config.webhook_url and not config.smtp_host:
            raise ConfigError("name at least one channel: webhook_url, or smtp_host with smtp_from and smtp_to")
        if config.webhook_url:
            webhook.check_url(config.webhook_url)
        if config.smtp_host:
            smtp.check(config)
        if config.fail_on not in FAIL_ON:
            raise ConfigError("fail_on must be one of %s" % ", ".join(FAIL_ON))
        return config


def _channels(config):
    """(name, where, send()) for each channel configured."""
    channels = []
    if config.webhook_url:
        payload = {"text": "*%s*\n%s" % (config.subject, config.text), "subject": config.subject,
                   "data": config.data or {}}
        channels.append(("webhook", webhook.origin(config.webhook_url), lambda: webhook.post(
            config.webhook_url, payload, config.webhook_headers, config.timeout, config.validate_certs,
            config.ca_cert)))
    if config.smtp_host:
        mail = smtp.message(config, config.subject, config.text)
        channels.append(("email", "%s:%d" % (config.smtp_host, config.smtp_port), lambda: smtp.send(config, mail)))
    return channels


def notify(config, reporter):
    results = []
    for name, where, send in _channels(config):
        if reporter.check_mode:
            results.append({"channel": name, "target": where, "sent": False, "error": None})
            continue
        try:
            send()
            results.append({"channel": name, "target": where, "sent": True, "error": None})
        except KeelError as error:
            reporter.warn("%s notification failed: %s" % (name, error))
            results.append({"channel": name, "target": where, "sent": False, "error": str(error)})
    failed = [result for result in results if result["error"]]
    sent = [result for result in results if result["sent"]]
    summary = dict(changed=bool(sent) or reporter.check_mode, channels=results, sent=len(sent))
    if failed and (config.fail_on == "any" or (config.fail_on == "all" and not sent)):
        summary.update(failed=True, msg="notification failed: %s" % "; ".join(result["error"] for result in failed))
    else:
        summary["msg"] = "%s %s" % ("would send to" if reporter.check_mode else "sent to",
                                    ", ".join(r["channel"] for r in (results if reporter.check_mode else sent)) or "no channel")
    return summary
