"""docs/architecture.md stays a true map: every room of the house it draws exists, and every file is in a room."""

import os
import re

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ENGINE = os.path.join(ROOT, "plugins", "module_utils")


def _house():
    with open(os.path.join(ROOT, "docs", "architecture.md")) as handle:
        text = handle.read()
    return re.search(r"## The house\n\n```\n(.*?)```", text, re.S).group(1)


def _room(house, package):
    """The lines of the house that describe one module_utils subpackage."""
    lines = house.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r" {4}%s/" % re.escape(package), line))
    end = next((i for i in range(start + 1, len(lines)) if re.match(r" {4}_\w|\S", lines[i])), len(lines))
    return "\n".join(lines[start:end])


def _named(text, name):
    return re.search(r"(?<![\w.])%s(?![\w])" % re.escape(name), text) is not None


def _stems(folder, ext=".py"):
    return sorted(name[:-len(ext)] for name in os.listdir(folder) if name.endswith(ext) and name != "__init__.py")


@pytest.mark.parametrize("package", sorted(name for name in os.listdir(ENGINE) if name.startswith("_")
                                           and os.path.isdir(os.path.join(ENGINE, name))))
def test_every_engine_file_is_in_its_room(package):
    room = _room(_house(), package)
    files = [os.path.relpath(os.path.join(root, name), os.path.join(ENGINE, package))[:-3]
             for root, _dirs, names in os.walk(os.path.join(ENGINE, package)) for name in names
             if name.endswith(".py") and name != "__init__.py"]
    missing = sorted(path for path in files if not _named(room, os.path.basename(path)))
    assert missing == [], "docs/architecture.md does not place %s in %s/" % (", ".join(missing), package)


def test_every_top_level_engine_file_module_role_and_playbook_is_named():
    house = _house()
    wanted = ["%s.py" % stem for stem in _stems(ENGINE)]
    wanted += _stems(os.path.join(ROOT, "plugins", "modules"))
    wanted += _stems(os.path.join(ROOT, "plugins", "doc_fragments"))
    wanted += os.listdir(os.path.join(ROOT, "roles")) + os.listdir(os.path.join(ROOT, "molecule"))
    wanted += _stems(os.path.join(ROOT, "playbooks"), ".yml")
    wanted += _stems(os.path.join(ROOT, "tools", "keel_stack"))
    missing = sorted(set(name for name in wanted if not _named(house, name)))
    assert missing == [], "docs/architecture.md does not name %s" % ", ".join(missing)


def test_every_room_it_draws_exists():
    house = _house()
    drawn = re.findall(r"^ {4}(_\w+)(/|\.py)", house, re.M)
    absent = [name + kind for name, kind in drawn if not os.path.exists(os.path.join(ENGINE, name + kind.rstrip("/")))]
    assert drawn and absent == []
