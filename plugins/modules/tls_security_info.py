#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: tls_security_info
short_description: Security findings of TLS certificates - expiry, weak keys, weak signatures
version_added: 0.1.0
description:
  - Reads the certificate each of O(endpoints) serves, and each PEM file of O(paths), without verifying it (an
    expired or self-signed one is what must be found), and returns findings - expired, expiring within
    O(warn_days) days (C(high) within O(critical_days)), an RSA or DSA key under 2048 bits or an elliptic curve
    under 256, and an MD5 or SHA-1 signature. Changes nothing.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
requirements:
  - cryptography
options:
  endpoints:
    description: Servers to read the certificate from.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: TLS port.
        type: int
        required: true
      server_name:
        description: SNI name to ask for; the host by default.
        type: str
  paths:
    description: PEM certificate files; the first certificate of each is audited.
    type: list
    elements: path
    default: []
  warn_days:
    description: A certificate expiring within this many days is a finding.
    type: int
    default: 30
  critical_days:
    description: Within this many days the finding is C(high).
    type: int
    default: 7
  timeout:
    description: Seconds to connect and read each certificate.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: Audit the public certificates
  keel.ops.tls_security_info:
    endpoints:
      - {host: shop.example.com, port: 443}
    paths: [/etc/ssl/shop/api.pem]
  register: tls_audit
"""

RETURN = r"""
findings:
  description: Each finding - C(check), C(severity), C(target), C(title), C(fix) and C(detail).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._security.tls import audit

ARGUMENT_SPEC = dict(
    endpoints=dict(type="list", elements="dict", default=[], options=dict(
        host=dict(type="str", required=True), port=dict(type="int", required=True), server_name=dict(type="str"))),
    paths=dict(type="list", elements="path", default=[]),
    warn_days=dict(type="int", default=30),
    critical_days=dict(type="int", default=7),
    timeout=dict(type="float", default=10),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "tls_security_info"):
        findings = audit(params["endpoints"], params["paths"], warn_days=params["warn_days"],
                         critical_days=params["critical_days"], timeout=params["timeout"])
        module.exit_json(changed=False, findings=findings)


if __name__ == "__main__":
    main()
