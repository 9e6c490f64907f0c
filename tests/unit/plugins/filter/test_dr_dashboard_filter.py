"""The dr_dashboard filter: a drill's report in, the page out; anything else refused with a message."""

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.keel.ops.plugins.filter.dr_dashboard import FilterModule


def _dr_dashboard():
    return FilterModule().filters()["dr_dashboard"]


def test_the_filter_renders_the_page_with_history_and_locations_optional():
    page = _dr_dashboard()({"id": "d1", "result": "passed"})
    assert page.startswith("<!DOCTYPE html>") and "PASSED" in page and "no earlier drills" in page
    page = _dr_dashboard()({"id": "d1"}, [{"id": "d0", "rto_seconds": 1, "rpo_seconds": 2}],
                           [{"repository": "/srv/backups", "reachable": True}], title="Shop")
    assert "<title>Shop d1</title>" in page and "/srv/backups" in page and "<svg" in page


@pytest.mark.parametrize("args, message", [
    (("not a drill",), "expects the drill's report (a dict), got str"),
    (({}, {"id": "x"}), "history must be a list of dicts"),
    (({}, [], ["s3://b"]), "locations must be a list of dicts"),
])
def test_the_filter_refuses_what_is_not_a_report(args, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        _dr_dashboard()(*args)
