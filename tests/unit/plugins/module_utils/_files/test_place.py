"""Members put in place beside what they replace, all or nothing, never outside their paths."""

import hashlib
import io
import json
import os

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._files import place


def _record(name, content=None, kind="file", link=None, mode=0o644, mtime=1700000000):
    record = {"name": name, "type": kind, "mode": mode, "uid": os.getuid(), "gid": os.getgid(), "user": None,
              "group": None, "mtime": mtime}
    if content is not None:
        record.update(size=len(content), sha256=hashlib.sha256(content).hexdigest())
    if link is not None:
        record["link"] = link
    return record


@pytest.fixture
def root(tmp_path):
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


def _placement(root, tmp_path, tops=("app",)):
    journal = place.Journal(str(tmp_path / "journal"))
    journal.start({"root": str(root)})
    return place.Placement(str(root), list(tops), journal, "t0k3n")


@pytest.mark.parametrize("name, expected", [
    ("/etc/passwd", "not a plain relative path"), ("app/../etc", "not a plain relative path"),
    ("app//x", "not a plain relative path"), ("", "not a plain relative path"), ("other/x", "lies outside"),
    ("application/x", "lies outside"),
])
def test_names_must_be_plain_and_below_the_backups_paths(name, expected):
    with pytest.raises(IntegrityError, match=expected):
        place.check_name(name, ["app"])


def test_a_failed_restore_puts_back_everything_it_replaced(root, tmp_path):
    (root / "app").mkdir()
    (root / "app" / "keep.txt").write_text("old")
    placement = _placement(root, tmp_path)
    placement.directory(_record("app", kind="directory", mode=0o755))
    placement.file(_record("app/keep.txt", b"new"), io.BytesIO(b"new"))
    placement.file(_record("app/sub/created.txt", b"made"), io.BytesIO(b"made"))
    assert (root / "app" / "keep.txt").read_text() == "new"
    with pytest.raises(IntegrityError, match="does not match the sha256"):
        placement.file(_record("app/bad.txt", b"expected"), io.BytesIO(b"tampered"))
    assert placement.rollback() == []
    assert (root / "app" / "keep.txt").read_text() == "old"
    assert sorted(os.listdir(str(root / "app"))) == ["keep.txt"]


def test_a_journal_left_by_a_killed_restore_is_rolled_back_or_finished(root, tmp_path):
    (root / "app").mkdir()
    (root / "app" / "f").write_text("old")
    placement = _placement(root, tmp_path)
    placement.file(_record("app/f", b"new"), io.BytesIO(b"new"))
    os.close(placement.journal._fd)  # pylint: disable=protected-access  # the process is gone
    warnings = []
    assert place.repair(str(tmp_path / "journal"), warnings.append) == "rolled back"
    assert (root / "app" / "f").read_text() == "old" and not (tmp_path / "journal").exists()
    assert "rolled back" in warnings[0]

    placement = _placement(root, tmp_path)
    placement.file(_record("app/f", b"new"), io.BytesIO(b"new"))
    placement.journal.commit()  # killed after the commit, before the asides were deleted
    os.close(placement.journal._fd)  # pylint: disable=protected-access
    assert [name for name in os.listdir(str(root / "app")) if name.startswith(".keel-aside-")]
    assert place.repair(str(tmp_path / "journal"), warnings.append) == "finished"
    assert os.listdir(str(root / "app")) == ["f"] and (root / "app" / "f").read_text() == "new"


def test_the_journal_of_a_restore_still_running_is_never_repaired(root, tmp_path):
    placement = _placement(root, tmp_path)
    with pytest.raises(KeelError, match="another restore of the same files"):
        place.repair(str(tmp_path / "journal"), lambda text: None)
    with pytest.raises(KeelError, match="started at the same moment"):
        place.Journal(str(tmp_path / "journal")).start({})
    placement.journal.close()
    assert not (tmp_path / "journal").exists()


def test_a_journal_cut_mid_line_is_read_up_to_the_cut(tmp_path):
    path = tmp_path / "j"
    path.write_text(json.dumps({"step": "start"}) + "\n" + '{"step": "pla')
    assert place.Journal.read(str(path)) == [{"step": "start"}]


def test_a_symlink_on_disk_cannot_lead_a_member_out_of_its_path(root, tmp_path):
    (tmp_path / "outside").mkdir()
    (root / "app").mkdir()
    os.symlink(str(tmp_path / "outside"), str(root / "app" / "data"))
    placement = _placement(root, tmp_path)
    with pytest.raises(IntegrityError, match="outside"):
        placement.file(_record("app/data/x", b"x"), io.BytesIO(b"x"))
    assert os.listdir(str(tmp_path / "outside")) == []


def test_what_already_holds_the_content_is_left_alone_and_only_attributes_are_set(root, tmp_path):
    (root / "app").mkdir()
    (root / "app" / "same").write_bytes(b"same")
    os.utime(str(root / "app" / "same"), (1700000000, 1700000000))
    os.chmod(str(root / "app" / "same"), 0o644)
    inode = os.stat(str(root / "app" / "same")).st_ino
    placement = _placement(root, tmp_path)
    placement.file(_record("app/same", b"same"), io.BytesIO(b"same"))
    assert placement.counts["unchanged"] == 1 and not placement.changed
    placement.file(_record("app/same", b"same", mode=0o600), io.BytesIO(b"same"))
    assert placement.counts["attributes"] == 1 and os.stat(str(root / "app" / "same")).st_ino == inode
    assert oct(os.stat(str(root / "app" / "same")).st_mode & 0o777) == "0o600"


def test_hard_links_must_point_at_a_member_restored_before_them(root, tmp_path):
    placement = _placement(root, tmp_path)
    with pytest.raises(IntegrityError, match="did not restore before it"):
        placement.hardlink(_record("app/h", kind="hardlink", link="app/missing"))
    with pytest.raises(IntegrityError, match="lies outside"):
        placement.hardlink(_record("app/h", kind="hardlink", link="etc/shadow"))


def test_setuid_bits_are_dropped_unless_owners_are_restored():
    owners = place.Owners()
    record = _record("x", b"", mode=0o4755)
    assert owners.mode(record) == (0o4755 if os.geteuid() == 0 else 0o755)


def test_an_undo_that_cannot_complete_is_refused_with_the_cleanup(tmp_path):
    journal = tmp_path / "j"
    steps = [{"step": "start"}, {"step": "aside", "path": str(tmp_path / "no-dir" / "f"),
                                 "aside": str(tmp_path / "aside")}]
    (tmp_path / "aside").write_text("x")
    journal.write_text("".join(json.dumps(step) + "\n" for step in steps))
    with pytest.raises(KeelError, match="could not be rolled back"):
        place.repair(str(journal), lambda text: None)
    assert journal.exists()
