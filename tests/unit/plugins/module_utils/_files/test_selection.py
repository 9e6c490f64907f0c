"""Which files a file set holds: paths checked, globs, secrets left out unless named, specials reported."""

import os
import sqlite3

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._files import selection


@pytest.mark.parametrize("paths, expected", [
    ([], "at least one absolute path"),
    (["relative"], "is not an absolute path"),
    (["/srv/../etc"], "contains '..'"),
    (["/"], "the whole system"),
    (["/srv/app", "/srv/app/data"], "/srv/app/data is inside /srv/app"),
    (["/srv/app", "/srv/app/"], "listed twice"),
])
def test_paths_are_checked_before_anything_is_read(paths, expected):
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.").replace("(", r"\(")):
        selection.check_paths(paths)


def test_sibling_paths_with_a_common_prefix_are_not_nested():
    assert selection.check_paths(["/srv/app", "/srv/application"]) == ["srv/app", "srv/application"]


def _names(sel):
    return sorted(os.path.relpath(entry.path, sel.paths[0]) for entry in sel.walk())


@pytest.fixture
def app(tmp_path):
    root = tmp_path / "app"
    (root / "logs" / "old").mkdir(parents=True)
    (root / "cache").mkdir()
    for name in ("logs/a.log", "logs/old/b.log", "logs/keep.txt", "cache/c.bin", "main.py", ".env", ".env.prod",
                 "server.key", "id_ed25519", "notes.pem.txt"):
        (root / name).write_text(name)
    return root


def test_globs_without_a_slash_match_names_at_any_depth_and_with_one_the_path(app):
    sel = selection.Selection([str(app)], include=["*.log", "main.py"], exclude=["old"])
    assert _names(sel) == [".", "cache", "logs", "logs/a.log", "main.py"]
    sel = selection.Selection([str(app)], exclude=["logs/*.log", "cache"])
    assert "logs/keep.txt" in _names(sel) and "logs/a.log" not in _names(sel) and "logs/old/b.log" not in _names(sel)


def test_secrets_are_left_out_unless_named(app):
    sel = selection.Selection([str(app)])
    names = _names(sel)
    assert not {".env", ".env.prod", "server.key", "id_ed25519"} & set(names) and "notes.pem.txt" in names
    excluded = sorted(os.path.basename(path) for path in sel.excluded_secrets)
    assert excluded == [".env", ".env.prod", "id_ed25519", "server.key"]
    sel = selection.Selection([str(app)], include_secrets=["*.key"])
    assert "server.key" in _names(sel) and ".env" not in _names(sel)
    named = selection.Selection([str(app / ".env")])
    assert [entry.name for entry in named.walk()] == [selection.arcname(str(app / ".env"))]


def test_sockets_fifos_and_the_local_repository_are_not_stored(app):
    os.mkfifo(str(app / "pipe"))
    (app / "repo").mkdir()
    (app / "repo" / "manifest.json").write_text("{}")
    sel = selection.Selection([str(app)], excluded_roots=[str(app / "repo")])
    names = _names(sel)
    assert "pipe" not in names and "repo" not in names
    assert sel.skipped == [{"path": str(app / "pipe"), "reason": "FIFO: not stored"}]


def test_symlinks_are_stored_as_links_never_followed(app, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.txt").write_text("x")
    os.symlink(str(tmp_path / "elsewhere"), str(app / "link"))
    entries = {os.path.basename(entry.path): entry for entry in selection.Selection([str(app)]).walk()}
    assert entries["link"].kind == "symlink" and "secret.txt" not in entries


def test_sqlite_databases_are_found_by_header_and_their_sidecars_left_out(app):
    db = sqlite3.connect(str(app / "state.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    (app / "fake.db").write_text("not a database")
    entries = {os.path.basename(entry.path): entry for entry in selection.Selection([str(app)]).walk()}
    db.close()
    assert entries["state.db"].sqlite and not entries["fake.db"].sqlite
    assert "state.db-wal" not in entries and "state.db-shm" not in entries
    plain = {os.path.basename(e.path): e for e in selection.Selection([str(app)], sqlite=[]).walk()}
    assert not plain["state.db"].sqlite
