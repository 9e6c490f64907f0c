"""A real HTTP server on loopback whose endpoints misbehave on purpose: errors, slowness, wrong bodies."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path, _sep, query = self.path.partition("?")
        server = self.server
        with server.lock:
            server.hits[path] = server.hits.get(path, 0) + 1
            hits = server.hits[path]
        if path == "/ok":
            self._send(200, {"status": "ok", "version": "v1", "checks": {"db": "up"}})
        elif path == "/error":
            self._send(500, {"status": "error"})
        elif path == "/degraded":
            self._send(200, {"status": "degraded", "version": "v1"})
        elif path == "/text":
            self._send(200, b"all systems nominal", "text/plain")
        elif path == "/slow":
            time.sleep(float(query or "0.2"))
            self._send(200, {"status": "ok"})
        elif path == "/flaky":  # 503 for the first two requests, then healthy
            self._send(503 if hits <= 2 else 200, {"status": "starting" if hits <= 2 else "ok"})
        else:
            self._send(404, {"error": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self._send(200, {"received": True})


class TestServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.hits = {}
        self.posts = []

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.server_address[1], path)


def start_server():
    server = TestServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
