"""Lock records: how a holder is described, and when its process is provably gone.
"""

import os
import subprocess
import sys

from ansible_collections.keel.ops.plugins.module_utils._backup.storage import lock
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.lock import describe_holder


def test_describe_holder():
    assert describe_holder({}) == "another process (it has not recorded who it is yet)"
    assert describe_holder({"host": "db1", "pid": 42, "owner": "pg_backup", "since": "2024-05-01T02:00:00Z"}) == \
        "host db1 pid 42 (pg_backup) since 2024-05-01T02:00:00Z"


def test_process_gone_only_for_dead_pids_of_this_machine():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    here = lock.holder_record(None)
    assert lock.process_gone(dict(here, pid=child.pid))
    assert not lock.process_gone(dict(here, pid=os.getpid()))
    assert not lock.process_gone(dict(here, pid=child.pid, host="elsewhere"))
    assert not lock.process_gone(dict(here, pid=child.pid, pidns="pid:[1]"))
    assert not lock.process_gone(dict(here, pid="12"))
