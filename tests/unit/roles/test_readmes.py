"""Every role's README has an example play and names every variable its argument specs declare."""

import os

import pytest
import yaml

ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "roles")
ROLES = os.path.normpath(ROLES)


@pytest.mark.parametrize("role", sorted(os.listdir(ROLES)))
def test_the_readme_shows_a_play_and_every_variable(role):
    with open(os.path.join(ROLES, role, "README.md")) as handle:
        readme = handle.read()
    with open(os.path.join(ROLES, role, "meta", "argument_specs.yml")) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    assert "## Example play" in readme and "```yaml" in readme
    missing = sorted(name for entry in specs.values() for name in entry.get("options", {}) if "`%s`" % name not in readme)
    assert missing == [], "roles/%s/README.md does not mention %s" % (role, ", ".join(missing))
