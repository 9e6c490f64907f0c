"""What the benchmarks share: their error type, the launcher that measures a child's peak RSS, the rounds that
time every step in turn, and running a child or a keel module.

The launcher runs as `python -c LAUNCHER <report file> <argv...>`: it starts the child and writes its ru_maxrss
(KiB) into the report file. A child forked from a benchmark itself would not do: Linux counts the memory a
process had before exec in its peak, so the benchmark's own RSS (boto3, psycopg2) would be a floor under every
figure. The launcher is a bare interpreter; it also counts the grandchildren the child reaped itself."""

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = os.path.join(ROOT, "plugins", "modules")


class BenchError(RuntimeError):
    """A step failed; the message says why."""


LAUNCHER = r"""
import os, sys
child = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_pid, status, usage = os.wait4(child, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def measure_rounds(steps, repeat, runs, warmup=None):
    """Run every step once per round, in turn, and keep each step's fastest round in `runs`.

    Rounds rather than N runs of one tool after the other: a slow spell of a shared machine then hits every tool
    alike instead of one. A failing step is recorded (and shown) instead of ending the run. `warmup` names a step
    run once, untimed, before the rounds, so that no tool pays for a cold cache (the first restore into a
    restarted PostgreSQL took up to twice as long as the next ones)."""
    if warmup:
        os.sync()
        started = time.monotonic()
        dict(steps)[warmup]()
        print("  warm-up: %-30s %7.2f s (not counted)" % (warmup, time.monotonic() - started))
    for round_ in range(repeat):
        for key, measure in steps:
            if "error" in runs.get(key, {}):
                continue
            os.sync()  # no writeback of the previous step's dirty pages during this one
            try:
                result = measure()
            except BenchError as error:
                runs[key] = {"error": str(error)}
                print("  %s: FAILED: %s" % (key, error), file=sys.stderr)
                continue
            print("  round %d: %-30s %7.2f s" % (round_ + 1, key, result["seconds"]))
            if key not in runs or result["seconds"] < runs[key]["seconds"]:
                runs[key] = result


def run(argv, env=None, what=None):
    """Run a child to completion; a failure is a BenchError with the end of what it said."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise BenchError("%s failed: %s" % (what or argv[0], (proc.stderr or proc.stdout)[-1500:]))
    return proc


def module(name, args):
    """Run a keel module as Ansible would (arguments in a 0600 JSON file) and return its result."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        os.chmod(handle.name, 0o600)
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    try:
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build"))  # the collection, linked by `make`
        out = run([sys.executable, os.path.join(MODULES, name + ".py"), handle.name], env=env, what=name).stdout
    finally:
        os.unlink(handle.name)
    return json.loads(out)
