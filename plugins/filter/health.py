from ansible.errors import AnsibleFilterError
from ansible_collections.keel.ops.plugins.module_utils._probe.report import prometheus_text, report, summary_table


def _require_mapping(value, name):
    if not isinstance(value, dict):
        raise AnsibleFilterError("%s expects a dict of health_probe results keyed by host, got %s"
                                 % (name, type(value).__name__))
    return value


def health_table(results_by_host):
    return summary_table(_require_mapping(results_by_host, "health_table"))


def health_prometheus(results_by_host):
    return prometheus_text(_require_mapping(results_by_host, "health_prometheus"))


def health_report(results_by_host):
    return report(_require_mapping(results_by_host, "health_report"))


class FilterModule(object):
    def filters(self):
        return {"health_table": health_table, "health_prometheus": health_prometheus,
                "health_report": health_report}
