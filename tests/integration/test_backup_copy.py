"""backup_copy run as Ansible runs it: local to S3 and S3 to local on the stack's S3 endpoint, encrypted and
signed backups copied without their keys, a flipped byte refused, retention at the destination."""

import io
import json
import os
import uuid

from ansible_run import run_four_ways, run_module
from pg_fixtures import s3_args


def _to_s3(s3):
    return {"to_" + key: value for key, value in s3_args(s3).items()}


def _file_backups(tmp_path, repo, count, **extra):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    ids = []
    for index in range(count):
        (data / "file.txt").write_text("version %d\n" % index)
        taken = run_module("file_backup", dict(extra, repository=repo, paths=[str(data)], source="app1"))
        assert taken["changed"], taken.get("msg")
        ids.append(taken["backup_id"])
    return data, ids


def _signing_key(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = tmp_path / "signing.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(private), key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_an_encrypted_signed_backup_copied_offsite_restores_from_there_without_the_key_at_copy_time(
        tmp_path, s3, age_key):
    recipient, identity = age_key
    private, public = _signing_key(tmp_path)
    local = str(tmp_path / "local")
    data, ids = _file_backups(tmp_path, local, 2, encryption_recipients=[recipient], signing_key_file=private)
    offsite = "s3://%s/offsite-%s" % (s3["bucket"], uuid.uuid4().hex[:8])
    copy_args = dict(_to_s3(s3), kind="files", source="app1", backup_id="all", repository=local,
                     to_repository=offsite, trusted_signing_keys=[public])
    runs = run_four_ways("backup_copy", copy_args)
    assert [run.get("changed") for run in runs] == [True, True, False, False], [run.get("msg") for run in runs]
    assert runs[0]["copied"] == ids and runs[1]["copied"] == ids and runs[3]["copied"] == []
    assert runs[3]["sources"][0]["present"] == ids
    assert runs[1]["bytes"] > 0 and s3["secret_key"] not in json.dumps(runs[1])

    listed = run_module("file_backup_info", dict(s3_args(s3), repository=offsite, trusted_signing_keys=[public]))
    assert [backup["backup_id"] for backup in listed["backups"]] == ids[::-1], listed.get("msg")
    target = tmp_path / "restored"
    done = run_module("file_backup", dict(s3_args(s3), repository=offsite, source="app1", state="restored",
                                          target=str(target), decryption_identity_file=identity,
                                          trusted_signing_keys=[public], journal_dir=str(tmp_path)))
    assert done["changed"] and done["backup_id"] == ids[-1], done.get("msg")
    assert (target / str(data).lstrip("/") / "file.txt").read_text() == "version 1\n"

    back = str(tmp_path / "back")
    home = run_module("backup_copy", dict(s3_args(s3), kind="files", repository=offsite, to_repository=back,
                                          keep_last=1, trusted_signing_keys=[public]))
    assert home["changed"] and home["copied"] == [ids[-1]], home.get("msg")
    assert os.path.exists(os.path.join(back, "files", "app1", ids[-1], "manifest.json.sig"))


def test_a_flipped_byte_is_refused_and_leaves_nothing_at_the_destination(tmp_path):
    local, copy_to = str(tmp_path / "local"), str(tmp_path / "copy")
    _data, ids = _file_backups(tmp_path, local, 1)
    folder = os.path.join(local, "files", "app1", ids[0])
    archive = next(name for name in os.listdir(folder) if name.startswith("files.tar"))
    path = os.path.join(folder, archive)
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, io.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    refused = run_module("backup_copy", dict(kind="files", repository=local, to_repository=copy_to))
    assert refused.get("failed") and "was not copied" in refused["msg"] and ids[0] in refused["msg"], refused
    listed = run_module("file_backup_info", {"repository": copy_to})
    assert listed["count"] == 0
    backups = os.path.join(copy_to, "files", "app1")
    assert not os.path.exists(backups) or [name for name in os.listdir(backups) if not name.startswith(".")] == []


def test_retention_applies_to_the_destination_by_its_own_policy(tmp_path):
    local, copy_to = str(tmp_path / "local"), str(tmp_path / "copy")
    _data, ids = _file_backups(tmp_path, local, 3)
    first = run_module("backup_copy", dict(kind="files", backup_id=ids[0], repository=local, to_repository=copy_to))
    assert first["copied"] == [ids[0]], first.get("msg")
    done = run_module("backup_copy", dict(kind="files", backup_id="all", repository=local, to_repository=copy_to,
                                          keep_last=1))
    assert done["copied"] == ids[1:] and done["deleted"] == [ids[0]], done.get("msg")
    kept = [b["backup_id"] for b in run_module("file_backup_info", {"repository": copy_to})["backups"]]
    assert sorted(kept) == ids[1:]  # both copied by this run are kept, whatever keep_last says
    assert len(run_module("file_backup_info", {"repository": local})["backups"]) == 3
    same = run_module("backup_copy", dict(kind="files", repository=local, to_repository=local))
    assert same.get("failed") and "is the repository itself" in same["msg"]


def test_backup_locations_report_their_health_and_an_unreachable_one_is_a_finding(tmp_path, s3):
    local = str(tmp_path / "local")
    _file_backups(tmp_path, local, 2)
    health = run_module("backup_location_info", {"repository": local, "max_age": 1})
    assert health["reachable"] and health["count"] == 2 and not health["stale"], health.get("msg")
    assert [(s["kind"], s["source"], s["count"]) for s in health["sources"]] == [("files", "app1", 2)]
    assert health["sources"][0]["newest_age_hours"] < 1
    down = run_module("backup_location_info", dict(s3_args(s3), repository="s3://%s/x" % s3["bucket"],
                                                   s3_endpoint_url="http://127.0.0.1:9", max_age=1))
    assert down.get("failed") is not True and down["reachable"] is False and down["stale"], down
    assert down["error"] and s3["secret_key"] not in json.dumps(down)
    empty = run_module("backup_location_info", {"repository": str(tmp_path / "empty"), "max_age": 1})
    assert empty["reachable"] and empty["count"] == 0 and empty["stale"]
