"""Benchmark: probe many local HTTP endpoints with one keel.ops.health_probe task vs a loop of ansible.builtin.uri.

Starts a threaded HTTP server on loopback with N endpoints, every Kth of which answers after a delay, then
runs two playbooks against it with ansible-playbook and prints wall-clock times side by side.

    .venv/bin/python bench/health_probe.py [--endpoints 200] [--slow-every 4] [--delay 0.2]
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)

PROBE_PLAY = """
- name: One health_probe task
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Probe every endpoint
      keel.ops.health_probe:
        checks: "{{ checks }}"
      register: probe
    - name: Count
      ansible.builtin.debug:
        msg: "healthy={{ probe.counts.healthy }} probe_ms={{ probe.duration_ms }}"
"""

URI_PLAY = """
- name: A loop of uri tasks
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Request every endpoint
      ansible.builtin.uri:
        url: "{{ item }}"
        status_code: 200
      loop: "{{ urls }}"
"""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        index = int(self.path.rsplit("/", 1)[-1])
        if index % self.server.slow_every == 0:
            time.sleep(self.server.delay)
        body = json.dumps({"status": "ok", "endpoint": index}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_server(slow_every, delay):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 512
    server.slow_every, server.delay = slow_every, delay
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_playbook(text, extra_vars):
    with tempfile.TemporaryDirectory() as tmp:
        playbook = os.path.join(tmp, "play.yml")
        variables = os.path.join(tmp, "vars.json")
        with open(playbook, "w") as handle:
            handle.write(text)
        with open(variables, "w") as handle:
            json.dump(extra_vars, handle)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"))
        started = time.monotonic()
        proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=" + sys.executable, "-e", "@" + variables,
                               playbook], capture_output=True, text=True, cwd=ROOT, env=env, check=False)
        elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("playbook failed:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-3000:]))
    return elapsed, proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--slow-every", type=int, default=4, help="every Nth endpoint is slow")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds a slow endpoint waits")
    args = parser.parse_args()

    server = start_server(args.slow_every, args.delay)
    port = server.server_address[1]
    urls = ["http://127.0.0.1:%d/ep/%d" % (port, i) for i in range(args.endpoints)]
    checks = [{"name": "ep-%d" % i, "kind": "http", "url": url} for i, url in enumerate(urls)]
    slow = len([i for i in range(args.endpoints) if i % args.slow_every == 0])

    probe_seconds, output = run_playbook(PROBE_PLAY, {"checks": checks})
    assert "healthy=%d" % args.endpoints in output, output[-2000:]
    module_ms = float(re.search(r"probe_ms=([0-9.]+)", output).group(1))
    uri_seconds, _output = run_playbook(URI_PLAY, {"urls": urls})
    server.shutdown()

    print("health_probe benchmark: %d endpoints on loopback, %d of them answer after %.0f ms"
          % (args.endpoints, slow, args.delay * 1000))
    print("machine: %s, %d cores, Python %s" % (platform.machine(), os.cpu_count(), platform.python_version()))
    print("%-44s %10s %14s" % ("tool", "seconds", "checks/second"))
    for label, seconds in (("keel.ops.health_probe (one task)", probe_seconds),
                           ("ansible.builtin.uri (loop, one item per URL)", uri_seconds)):
        print("%-44s %10.2f %14.1f" % (label, seconds, args.endpoints / seconds))
    print("speed-up: %.1fx (playbook wall clock, ansible-playbook start-up included in both)" % (uri_seconds / probe_seconds))
    print("health_probe's own run time inside the task: %.2f s (concurrency 32, the default)" % (module_ms / 1000.0))


if __name__ == "__main__":
    main()
