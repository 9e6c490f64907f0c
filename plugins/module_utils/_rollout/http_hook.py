# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's LoadBalancer over an HTTP admin hook: one URL takes a server out, another puts it back.

This is the shape of most load balancer admin APIs (and of the runbook this replaces: POST
/admin/disable/<instance>, POST /admin/enable/<instance>). Such a hook cannot say how many requests a
server still handles, so draining is a fixed wait: the rollout's drain_delay.
"""

from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import Request
from ansible_collections.keel.ops.plugins.module_utils._redact import mask_url
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import LoadBalancer, LoadBalancerError

MAX_ERROR_BODY = 300


class HttpHookLoadBalancer(LoadBalancer):
    kind = "http"

    def __init__(self, disable_url, enable_url, method="POST", headers=None, validate_certs=True, timeout=10.0):
        if not disable_url or not enable_url:
            raise LoadBalancerError("load_balancer.disable_url and load_balancer.enable_url are both required "
                                    "with type http")
        self.urls = {"disable": disable_url, "enable": enable_url}
        self.method = method
        self.headers = dict(headers or {})
        self.validate_certs = validate_certs
        self.timeout = timeout

    def url(self, action, server):
        template = self.urls[action]
        try:
            return template.format(server=server)
        except (KeyError, IndexError, ValueError) as error:
            raise LoadBalancerError("load_balancer.%s_url '%s' is not a valid template: %s; only {server} is "
                                    "replaced (write literal braces as {{ and }})"
                                    % (action, mask_url(template), error))

    def preflight(self, servers):
        for server in servers:
            for action in self.urls:
                self.url(action, server)

    def _call(self, action, server):
        url = self.url(action, server)
        shown = mask_url(url)
        try:
            response = Request().open(self.method, url, headers=self.headers, timeout=self.timeout,
                                      validate_certs=self.validate_certs, follow_redirects="safe")
            code = response.getcode()
        except HTTPError as error:
            body = error.read(MAX_ERROR_BODY).decode("utf-8", "replace") if error.fp else ""
            raise LoadBalancerError("%s %s answered HTTP %d%s" % (self.method, shown, error.code,
                                                                  ": " + " ".join(body.split()) if body else ""))
        except (URLError, OSError, ValueError) as error:
            reason = str(getattr(error, "reason", error)).replace(url, shown)  # some reasons quote the URL
            raise LoadBalancerError("%s %s failed: %s" % (self.method, shown, reason))
        if not 200 <= code < 300:
            raise LoadBalancerError("%s %s answered HTTP %d, expected 2xx" % (self.method, shown, code))

    def drain(self, server):
        self._call("disable", server)
        return None

    def enable(self, server, state=None):
        self._call("enable", server)

    def hint(self, server, state=None):
        return "%s %s" % (self.method, mask_url(self.url("enable", server)))
