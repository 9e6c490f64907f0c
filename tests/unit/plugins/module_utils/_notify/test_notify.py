"""notify's options, and what it reports when a channel fails."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._notify import notify, smtp, webhook

BASE = dict(subject="s", text="t", data=None, fail_on="any", webhook_url=None, webhook_headers=None, timeout=2,
            smtp_host=None, smtp_port=587, smtp_security="starttls", smtp_username=None, smtp_password=None,
            smtp_from="a@example.com", smtp_to=["b@example.com"], smtp_timeout=2, validate_certs=True, ca_cert=None)


@pytest.mark.parametrize("extra, expected", [
    ({}, "name at least one channel"),
    ({"webhook_url": "ftp://x/y"}, "http:// or https://"),
    ({"smtp_host": "mail", "smtp_to": []}, "smtp_from and at least one address"),
    ({"smtp_host": "mail", "smtp_username": "u", "smtp_password": "p", "smtp_security": "none"}, "unencrypted"),
    ({"smtp_host": "mail", "smtp_username": "u"}, "go together"),
])
def test_options_that_cannot_work_are_refused(extra, expected):
    with pytest.raises(ConfigError, match=expected):
        notify.NotifyConfig.from_params(dict(BASE, **extra))


def test_a_webhook_is_named_by_its_origin_only():
    assert webhook.origin("https://hooks.slack.com/services/T0/B0/secret") == "https://hooks.slack.com"


def test_a_mail_has_its_headers_and_body():
    options = dict(BASE)
    options["smtp_to"] = ["b@example.com", "c@example.com"]
    mail = smtp.message(notify.NotifyConfig(**options), "Sub", "Body")
    assert mail["Subject"] == "Sub" and mail["To"] == "b@example.com, c@example.com" and mail["Message-ID"]
    assert mail.get_content().strip() == "Body"


@pytest.mark.parametrize("fail_on, failed", [("any", True), ("all", True), ("never", False)])
def test_an_unreachable_channel_fails_the_task_as_fail_on_says(fail_on, failed):
    config = notify.NotifyConfig.from_params(dict(BASE, fail_on=fail_on, webhook_url="http://127.0.0.1:9/T0/s3cret"))
    reporter = Reporter()
    result = notify.notify(config, reporter)
    assert result.get("failed", False) is failed and result["channels"][0]["sent"] is False
    assert "could not be reached" in result["channels"][0]["error"] and "s3cret" not in result["channels"][0]["error"]
    assert reporter.warnings


def test_check_mode_sends_nothing():
    config = notify.NotifyConfig.from_params(dict(BASE, webhook_url="http://127.0.0.1:9/T0/s3cret"))
    result = notify.notify(config, Reporter(check_mode=True))
    assert result["changed"] and result["sent"] == 0 and not result.get("failed")
