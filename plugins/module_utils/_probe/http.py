# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The http probe kind of health_probe: one request (and the redirects the policy allows) inside the check's own
wall-clock budget, its status, body regex and JMESPath judged against the expectation, with the TLS contexts
shared across checks and credentials kept off other origins and out of every message.
"""

import json
import re
import socket
import threading
import time
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlsplit

from ansible.module_utils.urls import Request, make_context
from ansible_collections.keel.ops.plugins.module_utils._errors import first_line
from ansible_collections.keel.ops.plugins.module_utils._probe.status import CRITICAL, elapsed_ms
from ansible_collections.keel.ops.plugins.module_utils._redact import looks_secret, mask_url

try:
    import jmespath
except ImportError:
    jmespath = None


_TLS_CONTEXTS = {}


_TLS_LOCK = threading.Lock()


def _tls_context(validate_certs):
    """One TLS context per verification mode, shared by all requests: building one loads the CA store,
    which costs tens of milliseconds and would otherwise dominate a run of many small checks."""
    with _TLS_LOCK:
        if validate_certs not in _TLS_CONTEXTS:
            _TLS_CONTEXTS[validate_certs] = make_context(validate_certs=validate_certs)
        return _TLS_CONTEXTS[validate_certs]


# An HTTP check reads at most this much of a body: enough for any health document, bounded for memory.
MAX_BODY_BYTES = 1024 * 1024
MAX_REDIRECTS = 10
REDIRECT_CODES = (301, 302, 303, 307, 308)
REDIRECT_POLICIES = ("same_origin", "safe", "none")


# follow_redirects used to be a bool; Ansible turns true/false given to a string choice into yes/no.
_FORMER_POLICIES = {True: "same_origin", False: "none", "yes": "same_origin", "no": "none"}


_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutOfTime(Exception):
    """A check used up its timeout. Socket timeouts apply to each read, so a slow drip alone never trips them."""


def _time_left(end):
    left = end - time.monotonic()
    if left <= 0:
        raise OutOfTime()
    return left


def redirect_policy(value):
    """follow_redirects as one of REDIRECT_POLICIES (unset means same_origin), or None when it is not one."""
    policy = "same_origin" if value is None else _FORMER_POLICIES.get(value, value)
    return policy if policy in REDIRECT_POLICIES else None


def origin(url):
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def redirect_refusal(policy, method, url, target):
    """Why a redirect from url to target is not followed under policy, or None to follow it."""
    if policy == "none":
        return "follow_redirects is none"
    if method not in ("GET", "HEAD"):
        return "only GET and HEAD requests follow redirects"
    here, there = origin(url), origin(target)
    if there[0] not in _DEFAULT_PORTS:
        return "it is not an http or https URL"
    if here[0] == "https" and there[0] != "https":
        return "it would downgrade https to http"
    if policy == "same_origin" and here != there:
        return "it leaves the origin and follow_redirects is same_origin"
    return None


def without_credentials(headers):
    """The headers that may follow a redirect to another origin: none that looks like it carries a credential
    (Authorization, Cookie, X-Api-Key, X-Auth-Token...)."""
    return dict((name, value) for name, value in headers.items()
                if not looks_secret(name) and name.lower() not in ("cookie", "proxy-authorization"))


def _limit_next_read(response, seconds):
    """Shrink the socket's per-read timeout to what is left of the check's budget, so the last read cannot
    overrun it. http.client keeps the socket in its reader (response.fp.raw._sock; an HTTPError wraps the
    response once more); when it is not there, the budget is still checked between reads."""
    reader = response
    for _depth in range(3):
        reader = getattr(reader, "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
        if sock is not None:
            sock.settimeout(seconds)
            return


def read_body(response, end):
    """Up to MAX_BODY_BYTES of the body, or OutOfTime when it does not arrive before `end` (monotonic)."""
    if isinstance(response, HTTPError) and not response.fp:
        return b""
    chunks, size = [], 0
    try:
        while size < MAX_BODY_BYTES:
            _limit_next_read(response, _time_left(end))
            chunk = response.read1(MAX_BODY_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (socket.timeout, TimeoutError):
        raise OutOfTime()
    return b"".join(chunks)


def _request_data(check):
    data = check["body"]
    return json.dumps(data) if data is not None and not isinstance(data, (bytes, str)) else data


def _open(check, method, url, headers, data, end):
    """One request, redirects left to the caller: (status code, response headers, response to read)."""
    try:
        response = Request().open(method, url, headers=headers, data=data, timeout=_time_left(end),
                                  validate_certs=check["validate_certs"], follow_redirects="none",
                                  context=_tls_context(check["validate_certs"]))
        return response.getcode(), response.headers, response
    except HTTPError as error:  # an error status, or a redirect not followed, is an answer too
        return error.code, error.headers, error


def _exchange(check, end):
    """Request the URL, following the redirects follow_redirects allows, within the check's time budget.
    Returns (status code, body, the URL that answered, why a redirect was not followed or None)."""
    method, url, headers, data = check["method"].upper(), check["url"], dict(check["headers"]), _request_data(check)
    for _hop in range(MAX_REDIRECTS + 1):
        code, response_headers, response = _open(check, method, url, headers, data, end)
        location = response_headers.get("Location") if code in REDIRECT_CODES else None
        target = urljoin(url, location) if location else None
        refusal = redirect_refusal(check["follow_redirects"], method, url, target) if target else None
        if not target or refusal:
            try:
                body = read_body(response, end)
            finally:
                response.close()
            return code, body, url, refusal and "redirect to %s not followed: %s" % (mask_url(target), refusal)
        response.close()
        same_origin = origin(target) == origin(url)
        headers = headers if same_origin else without_credentials(headers)
        data = data if same_origin and code in (307, 308) else None
        url = target
    raise ValueError("more than %d redirects" % MAX_REDIRECTS)


def _check_json(check, body, result):
    """Compare a jmespath expression over the JSON body with the expected value."""
    try:
        document = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        result.problem(CRITICAL, "body is not JSON, so jmespath '%s' cannot be evaluated" % check["jmespath"])
        return
    actual = jmespath.search(check["jmespath"], document)
    result.details["jmespath_value"] = actual
    if check["expect"] is not None and actual != check["expect"]:
        result.problem(CRITICAL, "jmespath '%s' is %s, expected %s"
                       % (check["jmespath"], json.dumps(actual), json.dumps(check["expect"])))
    else:
        result.note("%s = %s" % (check["jmespath"], json.dumps(actual)))


def _judge_status(check, code, refusal, result):
    """The status code against the expected ones; a redirect not followed says why it was not."""
    if refusal:
        result.details["redirect_not_followed"] = refusal
    if code not in check["status_code"]:
        expected = " or ".join(str(c) for c in check["status_code"])
        result.problem(CRITICAL, "HTTP %d, expected %s%s" % (code, expected, "; %s" % refusal if refusal else ""))
    else:
        result.note("HTTP %d" % code)


def probe_http(check, result, timeout, thresholds):
    started = time.monotonic()
    try:
        code, body, url, refusal = _exchange(check, started + timeout)
    except OutOfTime:
        result.problem(CRITICAL, "no complete response within %gs" % timeout)
        return
    except (socket.timeout, TimeoutError):
        result.problem(CRITICAL, "no response within %gs" % timeout)
        return
    except URLError as error:
        reason = error.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            result.problem(CRITICAL, "no response within %gs" % timeout)
        else:
            result.problem(CRITICAL, "cannot reach %s: %s" % (mask_url(check["url"]), first_line(reason)))
        return
    except (OSError, ValueError) as error:
        result.problem(CRITICAL, "request failed: %s" % first_line(error))
        return
    result.metric("response_time", elapsed_ms(started), "ms", thresholds["response_time"])
    result.details["status_code"] = code
    result.details["body_bytes"] = len(body)
    if url != check["url"]:
        result.details["redirected_to"] = mask_url(url)
    _judge_status(check, code, refusal, result)
    if check["body_regex"] and not re.search(check["body_regex"], body.decode("utf-8", "replace")):
        result.problem(CRITICAL, "body does not match regex '%s'" % check["body_regex"])
    if check["jmespath"]:
        _check_json(check, body, result)
