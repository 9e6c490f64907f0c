"""The AWX objects under awx/ hold together: every job template runs an existing playbook with an existing project,
execution environment and credentials; every survey and credential variable is one its roles declare; and the
schedules fire inside the maintenance windows the roles guard."""

import datetime
import glob
import os

import pytest
import yaml
from dateutil.rrule import rrulestr

from ansible_collections.keel.ops.plugins.module_utils._maintenance import window

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = {}
for path in sorted(glob.glob(os.path.join(ROOT, "awx", "*.yml"))):
    with open(path) as handle:
        DATA.update(yaml.safe_load(handle))
TEMPLATES = dict((t["name"], t) for t in DATA["controller_templates"])
BUILTIN_CREDENTIAL_TYPES = ("Machine",)


def _load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def role_variables(role):
    specs = _load(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml"))["argument_specs"]
    return set(name for entry in specs.values() for name in entry.get("options", {}))


def _roles_in(node):
    """keel.ops roles a playbook uses: in roles: lists, and include_role/import_role tasks at any depth."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "roles":
                found.update((r["role"] if isinstance(r, dict) else r) for r in value)
            elif key in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
                found.add(value["name"])
            else:
                found |= _roles_in(value)
    elif isinstance(node, list):
        for item in node:
            found |= _roles_in(item)
    return found


def playbook_variables(playbook):
    roles = set(r.split(".")[-1] for r in _roles_in(_load(os.path.join(ROOT, playbook))) if r.startswith("keel.ops."))
    assert roles, "%s uses no keel.ops role" % playbook
    return set().union(*(role_variables(role) for role in roles))


def test_the_issue_asks_for_these_job_templates():
    wanted = ["backup", "dr_drill", "weekly_maintenance", "monthly_maintenance", "rolling_update",
              "incident_response", "security_audit"]
    assert set("keel.ops %s" % name for name in wanted) <= set(TEMPLATES)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_a_job_template_runs_an_existing_playbook_with_defined_objects(name):
    template = TEMPLATES[name]
    assert os.path.isfile(os.path.join(ROOT, template["playbook"])), template["playbook"]
    assert template["project"] in [p["name"] for p in DATA["controller_projects"]]
    assert template["execution_environment"] in [e["name"] for e in DATA["controller_execution_environments"]]
    credentials = [c["name"] for c in DATA["controller_credentials"]]
    assert set(template["credentials"]) <= set(credentials), set(template["credentials"]) - set(credentials)


@pytest.mark.parametrize("name", sorted(n for n, t in TEMPLATES.items() if t.get("survey_enabled")))
def test_every_survey_variable_is_a_variable_of_the_playbooks_roles(name):
    template = TEMPLATES[name]
    known = playbook_variables(template["playbook"])
    asked = [question["variable"] for question in template["survey_spec"]["spec"]]
    assert asked and set(asked) <= known, set(asked) - known
    for question in template["survey_spec"]["spec"]:
        assert question["type"] in ("text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect")
        if question["type"] == "multiplechoice":
            assert str(question.get("default", question["choices"][0])) in question["choices"]


def test_credentials_use_defined_types_and_inject_variables_the_roles_declare():
    types = dict((t["name"], t) for t in DATA["controller_credential_types"])
    every_role = set().union(*(role_variables(role) for role in os.listdir(os.path.join(ROOT, "roles"))))
    for credential in DATA["controller_credentials"]:
        assert credential["credential_type"] in set(types) | set(BUILTIN_CREDENTIAL_TYPES)
    for credential_type in types.values():
        fields = set(f["id"] for f in credential_type["inputs"]["fields"])
        assert set(credential_type["inputs"].get("required", [])) <= fields
        injected = credential_type["injectors"].get("extra_vars", {})
        assert set(injected) <= every_role, set(injected) - every_role
        secrets = [f["id"] for f in credential_type["inputs"]["fields"] if f.get("secret")]
        assert secrets, "%s has no secret input" % credential_type["name"]


def occurrences(schedule, count=12):
    rule = rrulestr(schedule["rrule"].replace(" RRULE:", "\nRRULE:"))
    return [moment for _index, moment in zip(range(count), rule)]


SCHEDULES = dict((s["name"], s) for s in DATA["controller_schedules"])
WEEKLY = [{"name": "weekly", "day": "sunday", "start": "02:00", "end": "04:00", "timezone": "UTC"}]
MONTHLY = [{"name": "monthly", "day": "sunday", "week": "first", "start": "01:00", "end": "05:00", "timezone": "UTC"}]


def test_schedules_name_existing_templates():
    for schedule in SCHEDULES.values():
        assert schedule["unified_job_template"] in TEMPLATES


@pytest.mark.parametrize("template, windows", [("keel.ops weekly_maintenance", WEEKLY),
                                               ("keel.ops monthly_maintenance", MONTHLY)])
def test_the_maintenance_schedules_fire_inside_the_windows_the_role_guards(template, windows):
    [schedule] = [s for s in SCHEDULES.values() if s["unified_job_template"] == template]
    moments = occurrences(schedule)
    assert len(moments) == 12
    for moment in moments:
        status = window.status(windows, moment.astimezone(datetime.timezone.utc))
        assert status["inside"], "%s fires at %s, outside the window: %s" % (template, moment, status["summary"])


def test_the_weekly_and_monthly_runs_never_share_a_sunday():
    weekly = set(m.date() for m in occurrences(SCHEDULES["keel.ops weekly_maintenance Sunday 02:00"], 40))
    monthly = set(m.date() for m in occurrences(SCHEDULES["keel.ops monthly_maintenance first Sunday 01:00"], 10))
    assert weekly and monthly and not weekly & monthly
