# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hide the credentials a URL may carry before it reaches a message, a result or a log."""

MASK = "***"
SECRET_WORDS = ("token", "key", "secret", "signature", "sig", "password", "pass", "auth", "access_token",
                "api_key", "apikey", "credential")


def looks_secret(name):
    """Whether a parameter, header or field name looks like it holds a secret: it contains one of SECRET_WORDS
    (so X-Amz-Signature and client_secret count; masking a harmless parameter is the safe mistake)."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def _mask_query(query):
    parts = []
    for part in query.split("&"):
        name, sep, _value = part.partition("=")
        parts.append(name + sep + MASK if sep and looks_secret(name) else part)
    return "&".join(parts)


def mask_url(url):
    """url with the password of its userinfo and the values of secret-looking query parameters replaced by
    ***. Everything else is kept byte for byte (no re-encoding), so templates such as {server} survive."""
    if not url:
        return url
    text = str(url)
    rest, hash_sign, fragment = text.partition("#")
    rest, question, query = rest.partition("?")
    scheme, sep, after = rest.partition("://")
    if sep:
        authority, slash, path = after.partition("/")
        userinfo, at, host = authority.rpartition("@")
        if at and ":" in userinfo:
            authority = userinfo.split(":", 1)[0] + ":" + MASK + "@" + host
        rest = scheme + sep + authority + slash + path
    return rest + question + (_mask_query(query) if question else "") + hash_sign + fragment
