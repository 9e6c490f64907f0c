# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A JSON POST to a chat webhook (Slack, Mattermost, Teams' incoming webhooks, or any HTTP endpoint). A webhook's
URL is a secret (Slack's carries its token in the path): messages name it by scheme and host only, and
redirects are refused, so the message never travels somewhere the URL did not say."""

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError


def origin(url):
    parts = urllib.parse.urlsplit(url)
    return "%s://%s" % (parts.scheme, parts.hostname or "")


def check_url(url):
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("webhook_url must be an http:// or https:// URL with a host name")
    return url


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # pylint: disable=too-many-arguments
        raise urllib.error.HTTPError(req.full_url, code, "redirected (redirects are not followed)", headers, fp)


def _context(validate_certs, ca_cert):
    if not validate_certs:
        return ssl._create_unverified_context()  # pylint: disable=protected-access  # asked for, per option
    return ssl.create_default_context(cafile=ca_cert)


def post(url, payload, headers=None, timeout=10, validate_certs=True, ca_cert=None):
    """POST payload as JSON; returns the HTTP status. Raises KeelError naming the webhook by its origin."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                     headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    opener = urllib.request.build_opener(_NoRedirects, urllib.request.HTTPSHandler(
        context=_context(validate_certs, ca_cert)))
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return response.status
    except urllib.error.HTTPError as error:
        raise KeelError("the webhook at %s answered %d %s" % (origin(url), error.code, error.reason))
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise KeelError("the webhook at %s could not be reached: %s" % (origin(url), reason))
