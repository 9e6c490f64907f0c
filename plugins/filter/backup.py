import time

from ansible.errors import AnsibleFilterError
from ansible_collections.keel.ops.plugins.module_utils._backup import report


def backup_parts(results, kind, verified=None):
    if kind not in report.KINDS:
        raise AnsibleFilterError("backup_parts: kind must be one of %s, got %r" % (", ".join(report.KINDS), kind))
    return report.copy_parts(results) if kind == "offsite" else report.parts_of(results, kind, verified)


def backup_summary(parts, host="this host"):
    subject, text = report.summary(_require_list(parts, "backup_summary"), host)
    return {"subject": subject, "text": text}


def backup_prometheus(parts, locations=None):
    return report.prometheus_text(_require_list(parts, "backup_prometheus"), int(time.time()),
                                  [location for location in locations or [] if isinstance(location, dict)])


def _require_list(value, name):
    if not isinstance(value, list):
        raise AnsibleFilterError("%s expects the list of parts made by keel.ops.backup_parts, got %s"
                                 % (name, type(value).__name__))
    return value


class FilterModule(object):
    def filters(self):
        return {"backup_parts": backup_parts, "backup_summary": backup_summary, "backup_prometheus": backup_prometheus}
