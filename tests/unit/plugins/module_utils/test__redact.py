"""mask_url: the credentials a URL may carry never reach a message."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._redact import mask_url


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
