"""Benchmark: keel.ops.rolling_update of a 4-container fleet behind HAProxy, under continuous HTTP load.

Starts a private embedded stack (Podman API, fleet, HAProxy; tools/stack.py), sends requests through HAProxy
from a thread for the whole run, and moves the fleet v1 -> v2 -> v1 ... for --rounds rollouts, each as Ansible
runs a module. Per rollout it compares the rollout's duration with the sum of the waits no rollout can avoid
- draining, stopping the old container, creating and starting the new one, waiting until it is healthy - and
prints the rest as the engine's overhead, next to the requests that failed.

    .venv/bin/python bench/rolling_update.py [--rounds 3] [--fleet 4]

Targets: 0 failed requests; overhead under 15% of the rollout.
"""

import argparse
import collections
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from ansible_run import run_module  # noqa: E402  (the tests' way of running a module as Ansible does)

WAITS = ("drain", "stop", "start", "healthy")
OVERHEAD_TARGET = 15.0


def load_stack_tool():
    """tools/keel_stack, the embedded stack the tests use too."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import keel_stack  # pylint: disable=import-outside-toplevel
    return keel_stack


class Load:
    """Requests through HAProxy, one connection each, until stopped."""

    def __init__(self, url):
        self.url = url
        self.total = 0
        self.failed = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.total += 1
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    response.read()
            except (urllib.error.URLError, OSError) as error:
                self.failed[type(error).__name__] += 1

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(10)


def rollout(facts, image):
    containers, haproxy = facts["containers"], facts["haproxy"]
    args = {
        "docker_host": containers["docker_host"],
        "labels": {"app": "keel-app", "keel.stack": "1"},
        "image": containers["images"][image],
        "health_checks": [{"name": "health", "kind": "http", "url": "http://127.0.0.1:{env[APP_PORT]}/health",
                           "jmespath": "status", "expect": "ok"}],
        "health_interval": 0.1,
        "load_balancer": {"type": "haproxy", "socket": haproxy["stats_socket"], "backend": "app"},
    }
    started = time.monotonic()
    result = run_module("rolling_update", args)
    wall = time.monotonic() - started
    if result.returncode != 0 or len(result["updated"]) != len(containers["instances"]):
        raise SystemExit("rollout to %s failed: %s" % (image, result.get("msg")))
    waits = dict((name, sum(item["timings"].get(name, 0.0) for item in result["instances"])) for name in WAITS)
    return {"image": image, "duration": result["duration"], "wall": wall, "waits": waits,
            "instances": result["instances"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fleet", type=int, default=4)
    args = parser.parse_args()

    stack_tool = load_stack_tool()
    state_dir = tempfile.mkdtemp(prefix="krb-")
    os.chmod(state_dir, 0o755)
    stack = stack_tool.Stack(state_dir)
    rounds = []
    try:
        facts = stack.start(services=["containers"], fleet=args.fleet, require=["containers"])
        load = Load(facts["haproxy"]["frontend_url"])
        load.start()
        time.sleep(0.5)
        for index in range(args.rounds):
            before_total, before_failed = load.total, sum(load.failed.values())
            outcome = rollout(facts, "v2" if index % 2 == 0 else "v1")
            outcome["requests"] = load.total - before_total
            outcome["failed"] = sum(load.failed.values()) - before_failed
            rounds.append(outcome)
        time.sleep(0.3)
        load.stop()
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    report(args, rounds, load)


def report(args, rounds, load):
    print("rolling_update benchmark: %d containers behind HAProxy, batch size 1, continuous HTTP load on loopback"
          % args.fleet)
    print("machine: %s, %d cores, %s, Python %s" % (platform.machine(), os.cpu_count(), platform.platform(terse=True),
                                                    platform.python_version()))
    header = ("rollout", "duration s", "drain", "stop", "start", "healthy", "waits s", "overhead s", "overhead",
              "requests", "failed", "wall s")
    print("%-12s %10s %7s %7s %7s %8s %8s %10s %9s %9s %7s %7s" % header)
    overheads = []
    for item in rounds:
        waits = sum(item["waits"].values())
        overhead = item["duration"] - waits
        share = 100.0 * overhead / item["duration"]
        overheads.append(share)
        item.update(total_waits=waits, overhead=overhead, overhead_percent=share)
        print("%-12s %10.2f %7.2f %7.2f %7.2f %8.2f %8.2f %10.2f %8.1f%% %9d %7d %7.2f" % (
            "-> " + item["image"], item["duration"], item["waits"]["drain"], item["waits"]["stop"],
            item["waits"]["start"], item["waits"]["healthy"], waits, overhead, share, item["requests"],
            item["failed"], item["wall"]))
    failed = sum(load.failed.values())
    median = statistics.median(overheads)
    print()
    print("%-34s %14s %10s %6s" % ("figure", "measured", "target", ""))
    print("%-34s %14d %10s %6s" % ("failed requests (all rollouts)", failed, "0", "ok" if failed == 0 else "MISSED"))
    print("%-34s %13.1f%% %9.0f%% %6s" % ("overhead, median of the rollouts", median, OVERHEAD_TARGET,
                                          "ok" if median < OVERHEAD_TARGET else "MISSED"))
    print("%-34s %14d %10s" % ("requests served during the run", load.total, ""))
    print("waits: drain (sessions to 0), stop (old container exits), start (create + start the new one), healthy "
          "(until its checks pass); overhead: the rest of the rollout (engine and load balancer calls, renames, "
          "removing the last old container - the others go while the next one is replaced). 'wall' adds the "
          "module's own start-up as Ansible runs it.")
    results = os.path.join(ROOT, "bench", "results")
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "rolling_update.json"), "w") as handle:
        json.dump({"machine": platform.platform(), "cores": os.cpu_count(), "rounds": rounds,
                   "failed_requests": failed, "requests": load.total, "median_overhead_percent": median}, handle,
                  indent=2)


if __name__ == "__main__":
    main()
