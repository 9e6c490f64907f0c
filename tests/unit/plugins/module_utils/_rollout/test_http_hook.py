"""The HTTP hook adapter against a small admin API on loopback."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.keel.ops.plugins.module_utils._rollout.http_hook import HttpHookLoadBalancer
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import LoadBalancerError


class AdminAPI(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        self.server.calls.append((self.path, self.headers.get("Authorization")))
        if self.path.split("?")[0].endswith("/locked"):
            body = b'{"error": "server is locked"}'
            self.send_response(409)
        else:
            body = b"{}"
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def admin():
    server = ThreadingHTTPServer(("127.0.0.1", 0), AdminAPI)
    server.calls = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def hook(admin, **options):
    base = "http://127.0.0.1:%d/admin" % admin.server_address[1]
    return HttpHookLoadBalancer(base + "/disable/{server}", base + "/enable/{server}",
                                headers={"Authorization": "Bearer s3cret"}, **options)


def test_disable_and_enable_call_the_urls_with_the_headers(admin):
    lb = hook(admin)
    lb.preflight(["api-1"])
    assert lb.drain("api-1") is None, "a hook cannot count sessions"
    lb.enable("api-1")
    assert admin.calls == [("/admin/disable/api-1", "Bearer s3cret"), ("/admin/enable/api-1", "Bearer s3cret")]


def test_an_error_status_names_the_url_and_the_answer(admin):
    lb = hook(admin)
    with pytest.raises(LoadBalancerError, match=r"POST http://127.0.0.1:\d+/admin/disable/locked answered HTTP 409: "
                                                r'\{"error": "server is locked"\}'):
        lb.drain("locked")


def test_an_unreachable_hook_is_an_error(admin):
    lb = HttpHookLoadBalancer("http://127.0.0.1:9/d/{server}", "http://127.0.0.1:9/e/{server}", timeout=2)
    with pytest.raises(LoadBalancerError, match=r"POST http://127.0.0.1:9/e/api-1 failed: .*refused"):
        lb.enable("api-1")
    assert lb.hint("api-1") == "POST http://127.0.0.1:9/e/api-1"


def test_templates_are_checked_up_front():
    lb = HttpHookLoadBalancer("http://lb/disable/{name}", "http://lb/enable/{server}")
    with pytest.raises(LoadBalancerError, match="disable_url 'http://lb/disable/\\{name\\}' is not a valid template"):
        lb.preflight(["api-1"])
    with pytest.raises(LoadBalancerError, match="are both required"):
        HttpHookLoadBalancer("http://lb/d/{server}", None)


SECRETS = ("s3cret-pw", "t0ken-value")


def test_credentials_in_the_urls_never_reach_a_message(admin):
    """user:password@ and ?token= in the hook URLs: masked in errors and in the by-hand hint."""
    base = "http://admin:s3cret-pw@127.0.0.1:%d/admin" % admin.server_address[1]
    lb = HttpHookLoadBalancer(base + "/disable/{server}?token=t0ken-value", base + "/enable/{server}?token=t0ken-value")
    with pytest.raises(LoadBalancerError) as answered:
        lb.drain("locked")
    message = str(answered.value)
    assert "http://admin:***@127.0.0.1:" in message and "/admin/disable/locked?token=*** answered HTTP 409" in message
    hint = lb.hint("api-1")
    assert hint.endswith("/admin/enable/api-1?token=***")
    unreachable = HttpHookLoadBalancer("http://u:s3cret-pw@127.0.0.1:9/d/{server}?key=t0ken-value",
                                       "http://u:s3cret-pw@127.0.0.1:9/e/{server}?key=t0ken-value", timeout=2)
    with pytest.raises(LoadBalancerError) as failed:
        unreachable.enable("api-1")
    bad_template = HttpHookLoadBalancer("http://u:s3cret-pw@lb/d/{name}", "http://lb/e/{server}")
    with pytest.raises(LoadBalancerError) as refused:
        bad_template.preflight(["api-1"])
    for text in (message, hint, str(failed.value), str(refused.value)):
        assert not any(secret in text for secret in SECRETS), text
