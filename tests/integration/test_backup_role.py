"""playbooks/backup.yml with the backup role on one local host: PostgreSQL, a file set with a SQLite database,
the offsite copy to S3, the summary by email and webhook, and the textfile metrics; a failing part fails the
play only after every other part ran."""

import email
import email.policy
import json
import os
import sqlite3
import uuid

from ansible_run import local_inventory, run_playbook
from http_fixture import start_server
from pg_fixtures import s3_args


def _app(tmp_path):
    data = tmp_path / "app"
    data.mkdir()
    (data / "settings.yml").write_text("workers: 4\n")
    (data / ".env").write_text("SECRET=x\n")
    db = sqlite3.connect(str(data / "clo.db"))
    db.execute("CREATE TABLE state (k TEXT, v TEXT)")
    db.execute("INSERT INTO state VALUES ('phase', 'green')")
    db.commit()
    db.close()
    return data


def _role_vars(tmp_path, postgres, s3, smtp, databases, **extra):
    offsite = "s3://%s/offsite-%s" % (s3["bucket"], uuid.uuid4().hex[:8])
    values = dict(
        backup_hosts="all", backup_repository=str(tmp_path / "repo"),
        backup_postgres_databases=databases, backup_postgres_login_host=postgres["host"],
        backup_postgres_login_port=postgres["port"], backup_postgres_login_user=postgres["user"],
        backup_postgres_login_password=postgres["password"], backup_postgres_bin_dir=postgres["bin_dir"],
        backup_file_sets=[{"name": "app-data", "paths": [str(_app(tmp_path))]}],
        backup_offsite_repository=offsite, backup_offsite_s3_endpoint_url=s3["endpoint_url"],
        backup_offsite_s3_region=s3["region"], backup_offsite_s3_access_key=s3["access_key"],
        backup_offsite_s3_secret_key=s3["secret_key"],
        backup_notify_smtp_host=smtp["host"], backup_notify_smtp_port=smtp["port"],
        backup_notify_smtp_username=smtp["user"], backup_notify_smtp_password=smtp["password"],
        backup_notify_smtp_from="backups@example.com", backup_notify_smtp_to=["ops@example.com"],
        backup_notify_ca_cert=smtp["ca_cert"], backup_verify=True,
        backup_prometheus_textfile=str(tmp_path / "keel_backup.prom"))
    values.update(extra)
    return values, offsite


def _mails(smtp):
    found = []
    for name in sorted(os.listdir(smtp["spool"])):
        if name.endswith(".eml"):
            with open(os.path.join(smtp["spool"], name), "rb") as handle:
                found.append(email.message_from_binary_file(handle, policy=email.policy.default))
    return found


def _listed(module_args):
    from ansible_run import run_module
    return run_module("backup_location_info", module_args)


def test_a_failing_part_is_reported_notified_and_fails_the_play_after_the_others_ran(tmp_path, postgres, s3, smtp):
    web = start_server()
    try:
        hook = web.url("/services/T0/B0/s3cr3t-hook")
        values, offsite = _role_vars(tmp_path, postgres, s3, smtp, [postgres["database"], "no_such_database"],
                                     backup_notify_webhook_url=hook)
        before = len(_mails(smtp))
        proc = run_playbook("playbooks/backup.yml", local_inventory(tmp_path), extra_vars=values)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, output[-3000:]
        assert "1 of 5 backup parts failed: postgres no_such_database" in output, output[-3000:]
        for secret in (postgres["password"], s3["secret_key"], smtp["password"], "s3cr3t-hook"):
            assert secret not in output

        local = _listed({"repository": values["backup_repository"]})
        assert sorted((s["kind"], s["count"]) for s in local["sources"]) == [("files", 1), ("postgres", 1)]
        remote = _listed(dict(s3_args(s3), repository=offsite))
        assert sorted((s["kind"], s["count"]) for s in remote["sources"]) == [("files", 1), ("postgres", 1)]

        mails = _mails(smtp)[before:]
        assert len(mails) == 1 and mails[0]["Subject"] == "Backups on db1: 4 saved, 1 failed"
        body = mails[0].get_content()
        assert body.startswith("FAILED postgres no_such_database") and "ok     files app-data" in body
        posted = json.loads(web.posts[-1]["body"])
        assert posted["subject"] == mails[0]["Subject"] and len(posted["data"]["parts"]) == 5

        metrics = (tmp_path / "keel_backup.prom").read_text()
        assert 'keel_backup_run_success{kind="postgres",source="no_such_database"} 0' in metrics
        assert 'keel_backup_run_success{kind="files",source="app-data"} 1' in metrics
        assert metrics.count("keel_backup_last_success_timestamp_seconds{") == 4  # two sources, two locations
    finally:
        web.shutdown()


def test_a_clean_run_passes_and_notifies_only_when_asked_to_on_failure(tmp_path, postgres, s3, smtp):
    values, _offsite = _role_vars(tmp_path, postgres, s3, smtp, [postgres["database"]], backup_notify_on="failure")
    before = len(_mails(smtp))
    proc = run_playbook("playbooks/backup.yml", local_inventory(tmp_path), extra_vars=values)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "Backups on db1" not in "".join(m["Subject"] for m in _mails(smtp)[before:])
    assert "ok     offsite" in proc.stdout
