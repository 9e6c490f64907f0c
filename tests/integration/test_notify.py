"""notify run as Ansible runs it: email through the stack's mail server (STARTTLS and login required, its own
CA) and a webhook on a loopback HTTP server; secrets reach no output."""

import email
import email.policy
import json
import os
import time

from ansible_run import run_module
from http_fixture import start_server
from test_malformed_inputs import closed_port


def _mail_args(smtp, **extra):
    args = dict(subject="Backups on db1: 3 saved, 1 failed", text="postgres shop: 12.3 MB in 1.2 s\nredis: failed",
                smtp_host=smtp["host"], smtp_port=smtp["port"], smtp_username=smtp["user"],
                smtp_password=smtp["password"], smtp_from="keel@example.com", smtp_to=["ops@example.com"],
                ca_cert=smtp["ca_cert"])
    args.update(extra)
    return args


def _spooled(smtp, before):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = sorted(set(name for name in os.listdir(smtp["spool"]) if name.endswith(".eml")) - before)
        if new:
            with open(os.path.join(smtp["spool"], new[0]), "rb") as handle:
                return email.message_from_binary_file(handle, policy=email.policy.default)
        time.sleep(0.05)
    return None


def test_an_email_reaches_the_mail_server_over_starttls_with_a_login(smtp):
    before = set(os.listdir(smtp["spool"]))
    checked = run_module("notify", _mail_args(smtp), check_mode=True)
    assert checked["changed"] and checked["channels"][0]["sent"] is False, checked.get("msg")
    assert set(os.listdir(smtp["spool"])) == before
    sent = run_module("notify", _mail_args(smtp))
    assert sent["changed"] and sent["sent"] == 1, sent.get("msg")
    mail = _spooled(smtp, before)
    assert mail is not None and mail["Subject"] == "Backups on db1: 3 saved, 1 failed"
    assert mail["To"] == "ops@example.com" and "redis: failed" in mail.get_content()
    assert smtp["password"] not in sent.stdout + sent.stderr


def test_a_wrong_password_or_an_unknown_ca_fails_with_the_reason_and_no_secret(smtp):
    wrong = run_module("notify", _mail_args(smtp, smtp_password="not-the-password"))
    assert wrong.get("failed") and "refused the login of %s" % smtp["user"] in wrong["msg"], wrong.get("msg")
    assert "not-the-password" not in wrong.stdout + wrong.stderr
    untrusted = run_module("notify", _mail_args(smtp, ca_cert=None))
    assert untrusted.get("failed") and "certificate verify failed" in untrusted["msg"], untrusted.get("msg")
    clear = run_module("notify", _mail_args(smtp, smtp_security="none"))
    assert clear.get("failed") and "would send the password unencrypted" in clear["msg"]


def test_a_webhook_gets_the_message_and_its_url_appears_nowhere(smtp):
    server = start_server()
    try:
        url = "http://127.0.0.1:%d/services/T000/B000/s3cr3t-t0ken" % server.server_port
        sent = run_module("notify", _mail_args(smtp, webhook_url=url, data={"saved": 3, "failed": 1}))
        assert sent["sent"] == 2, sent.get("msg")
        post = json.loads(server.posts[-1]["body"])
        assert post["subject"] == "Backups on db1: 3 saved, 1 failed" and post["data"] == {"saved": 3, "failed": 1}
        assert post["text"].startswith("*Backups on db1") and "redis: failed" in post["text"]
        assert "s3cr3t-t0ken" not in sent.stdout + sent.stderr

        missing = "http://127.0.0.1:%d/nowhere/s3cr3t-t0ken" % closed_port()
        failed = run_module("notify", _mail_args(smtp, webhook_url=missing))
        assert failed.get("failed") and "the webhook at http://127.0.0.1 could not be reached" in failed["msg"], failed
        assert failed["channels"][1]["sent"] is True  # the email went out all the same
        tolerated = run_module("notify", _mail_args(smtp, webhook_url=missing, fail_on="never"))
        assert not tolerated.get("failed") and "webhook notification failed" in json.dumps(tolerated["warnings"])
        assert "s3cr3t-t0ken" not in failed.stdout + failed.stderr + tolerated.stdout + tolerated.stderr
    finally:
        server.shutdown()


def test_a_message_without_a_channel_is_refused():
    run = run_module("notify", {"subject": "s", "text": "t"})
    assert run.get("failed") and "name at least one channel" in run["msg"]
