"""The http probe: redirect policies, credentials kept to their origin, and a body read within its budget."""

import time

import pytest

from ansible_collections.keel.ops.plugins.module_utils._probe.http import (
    OutOfTime,
    read_body,
    redirect_policy,
    redirect_refusal,
    without_credentials,
)


@pytest.mark.parametrize("value, policy", [
    (None, "same_origin"), ("same_origin", "same_origin"), ("safe", "safe"), ("none", "none"),
    (True, "same_origin"), ("yes", "same_origin"), (False, "none"), ("no", "none"), ("all", None),
])
def test_redirect_policy_accepts_the_former_booleans(value, policy):
    assert redirect_policy(value) == policy


A = "http://127.0.0.1:8001/health"


@pytest.mark.parametrize("policy, method, target, refusal", [
    ("same_origin", "GET", "http://127.0.0.1:8001/other", None),
    ("same_origin", "GET", "/relative-is-resolved-first", None),
    ("same_origin", "GET", "http://127.0.0.1:8002/health", "it leaves the origin and follow_redirects is same_origin"),
    ("same_origin", "GET", "http://localhost:8001/health", "it leaves the origin and follow_redirects is same_origin"),
    ("same_origin", "GET", "https://127.0.0.1:8001/health", "it leaves the origin and follow_redirects is same_origin"),
    ("safe", "GET", "http://other.example:9/x", None),
    ("safe", "HEAD", "https://other.example/x", None),
    ("safe", "POST", "http://127.0.0.1:8001/other", "only GET and HEAD requests follow redirects"),
    ("safe", "GET", "ftp://127.0.0.1/x", "it is not an http or https URL"),
    ("none", "GET", "http://127.0.0.1:8001/other", "follow_redirects is none"),
])
def test_redirect_refusal(policy, method, target, refusal):
    from urllib.parse import urljoin
    assert redirect_refusal(policy, method, A, urljoin(A, target)) == refusal


@pytest.mark.parametrize("policy", ["same_origin", "safe"])
def test_https_never_redirects_to_http(policy):
    assert redirect_refusal(policy, "GET", "https://h/a", "http://h:443/a") == "it would downgrade https to http"
    assert redirect_refusal(policy, "GET", "https://h/a", "https://h:443/b") is None  # the default port is the origin


def test_credentials_do_not_follow_a_redirect_to_another_origin():
    headers = {"Authorization": "Bearer x", "Proxy-Authorization": "Basic y", "Cookie": "s=1", "X-Api-Key": "k",
               "X-Auth-Token": "t", "Accept": "application/json", "X-Request-Id": "42"}
    assert without_credentials(headers) == {"Accept": "application/json", "X-Request-Id": "42"}


class Drip:
    """A response that hands out one byte per read1, each after a pause: a slow-drip body."""

    def __init__(self, pause, size=10 ** 6):
        self.pause, self.left = pause, size

    def read1(self, _n):
        time.sleep(self.pause)
        self.left -= 1
        return b"." if self.left >= 0 else b""


def test_reading_a_body_stops_at_the_end_of_the_budget():
    started = time.monotonic()
    with pytest.raises(OutOfTime):
        read_body(Drip(0.05), started + 0.3)
    assert time.monotonic() - started < 5


def test_a_body_that_ends_in_time_is_read_whole():
    assert read_body(Drip(0, size=5), time.monotonic() + 30) == b"....."
