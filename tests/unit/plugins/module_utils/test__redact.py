"""mask_url: the credentials a URL may carry never reach a message."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._redact import looks_secret, mask_url


@pytest.mark.parametrize("url, masked", [
    ("https://admin:s3cret@lb.internal/admin/disable/{server}", "https://admin:***@lb.internal/admin/disable/{server}"),
    ("https://admin:p%40ss:w0rd@lb:8443/x", "https://admin:***@lb:8443/x"),
    ("http://lb/enable/{server}?token=abc&dry=1", "http://lb/enable/{server}?token=***&dry=1"),
    ("http://lb/x?api_key=k1&apikey=k2&Key=k3&sig=s&X-Amz-Signature=s2&client_secret=c",
     "http://lb/x?api_key=***&apikey=***&Key=***&sig=***&X-Amz-Signature=***&client_secret=***"),
    ("http://lb/x?password=p&pass=q&auth=a&access_token=t&credential=c#frag",
     "http://lb/x?password=***&pass=***&auth=***&access_token=***&credential=***#frag"),
    ("http://user@lb/x?flag&server={server}", "http://user@lb/x?flag&server={server}"),
    ("http://lb/a%20b?q=a+b", "http://lb/a%20b?q=a+b"),
    ("", ""),
    (None, None),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_a_userinfo_password_never_survives_even_with_an_at_sign_in_the_path():
    masked = mask_url("https://u:pw@host/p@th?key=v")
    assert "pw" not in masked and masked == "https://u:***@host/p@th?key=***"


@pytest.mark.parametrize("url, masked", [
    ("https://user:hunter2@example.com:8443/health", "https://user:***@example.com:8443/health"),
    ("http://127.0.0.1:8080/health?token=abc&verbose=1", "http://127.0.0.1:8080/health?token=***&verbose=1"),
    ("https://h/x?X-Amz-Signature=f00&X-Amz-Credential=AKIA%2F1&page=2",
     "https://h/x?X-Amz-Signature=***&X-Amz-Credential=***&page=2"),
    ("https://h/?api_key=1&apikey=2&access_token=3&sig=4&pass=5&auth=6&key=7&secret=8&password=9",
     "https://h/?api_key=***&apikey=***&access_token=***&sig=***&pass=***&auth=***&key=***&secret=***&password=***"),
    ("https://h/?clientSecret=a&sessionToken=b&AUTH=c", "https://h/?clientSecret=***&sessionToken=***&AUTH=***"),
    ("https://u:p@h/?token=t#frag", "https://u:***@h/?token=***#frag"),
])
def test_password_and_secret_query_values_are_masked_in_probe_urls(url, masked):
    assert mask_url(url) == masked


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/health",
    "https://user@example.com/?page=2&q=a%20b&flag",
    "https://h/?token",  # a name without a value has nothing to hide
    "https://hooks.slack.com/services/T0/B0/XYZ",  # a path is not masked (callers show only the origin)
    "not a url at all",
    "",
])
def test_urls_without_secrets_are_unchanged(url):
    assert mask_url(url) == url


def test_none_passes_through():
    assert mask_url(None) is None


@pytest.mark.parametrize("name, secret", [
    ("token", True), ("Authorization", True), ("X-Api-Key", True), ("monitorPassword", True), ("CREDENTIALS", True),
    ("page", False), ("q", False), ("Content-Type", False), ("verbose", False),
])
def test_looks_secret(name, secret):
    assert looks_secret(name) is secret
