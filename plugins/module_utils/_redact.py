# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hide the credentials a URL carries before it reaches a message, a result or a file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.six.moves.urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"
SECRET_WORDS = ("token", "key", "secret", "signature", "sig", "password", "pass", "auth", "access_token", "api_key",
                "apikey", "credential")


def looks_secret(name):
    """Whether a parameter, header or field name suggests a credential: it contains one of SECRET_WORDS.
    Erring towards masking costs only a hidden value."""
    name = name.lower()
    return any(word in name for word in SECRET_WORDS)


def _mask_pair(pair):
    name, sep, value = pair.partition("=")
    return name + sep + MASK if sep and value and looks_secret(unquote_plus(name)) else pair


def mask_url(url):
    """The URL with the userinfo password and the values of secret-looking query parameters replaced by ***;
    anything else (and a string that is not a URL) is returned as it is."""
    if not url or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:  # e.g. a malformed port or IPv6 address: nothing we can take apart safely
        return url
    netloc = parts.netloc
    if has_password:
        userinfo, _at, hostport = netloc.rpartition("@")
        netloc = "%s:%s@%s" % (userinfo.split(":", 1)[0], MASK, hostport)
    query = "&".join(_mask_pair(pair) for pair in parts.query.split("&"))
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
