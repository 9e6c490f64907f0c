"""`make demo`'s story (tools/demo_data.py, then tools/demo.py) on a private stack of its own - the demo drops its
database and flushes its Redis, which the session's stack must not see: backups, a disaster, restore.yml, the
check that everything came back identical, and the DR drill's summary."""

import os
import shutil
import subprocess
import sys
import tempfile

import keel_stack as stack_tool  # tools/keel_stack, put on sys.path by conftest.py
import pytest
from ansible_run import ROOT
from conftest import unavailable


@pytest.fixture
def demo_stack():
    # Under /tmp and world-searchable: PostgreSQL runs as an unprivileged user when the tests run as root.
    state = tempfile.mkdtemp(prefix="keel-demo-")
    os.chmod(state, 0o755)
    stack = stack_tool.Stack(state)
    try:
        try:
            stack.start(services=["postgres", "redis", "s3"])
        except stack_tool.StackError as err:
            unavailable("stack: %s" % err)
        yield state
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_the_demo_recovers_everything_it_destroys_and_drills_it(demo_stack):
    env = dict(os.environ, KEEL_STACK_DIR=demo_stack)
    seeded = subprocess.run([sys.executable, "tools/demo_data.py", "--rows", "20000"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert seeded.returncode == 0, seeded.stderr
    run = subprocess.run([sys.executable, "tools/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-6000:]
    out = run.stdout
    assert "identical: every order (md5 of all rows), every Redis key, every upload (sha256), the SQLite state" in out
    assert "lost: the shop database (20000 orders), 55000 Redis keys, 200 uploads, the SQLite state" in out
    assert "both met" in out and "/reports/drill-demo-db/dashboard.html" in out
    disaster, restored = [line.split()[-3:] for line in out.splitlines()
                          if line.strip().startswith("runs in the SQLite state")]
    assert disaster == ["1000", "corrupt", "?"] and restored == ["1000", "corrupt", "1000"], (disaster, restored)
