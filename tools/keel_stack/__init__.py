"""The embedded services that `make demo` and the tests use, each on a free 127.0.0.1 port, all of their files
under one state directory (default ``<repo>/.stack``; ``KEEL_STACK_DIR`` or ``--state-dir`` override it).

    .venv/bin/python tools/stack.py start [--services postgres,redis,s3,smtp,containers] [--fleet N]
    .venv/bin/python tools/stack.py status [--json]
    .venv/bin/python tools/stack.py stop
    .venv/bin/python tools/stack.py stop-service redis
    .venv/bin/python tools/stack.py start-service redis

``start`` reuses services that run (pid alive and port answering) and restarts dead ones; ``containers``
(Podman API + app fleet + HAProxy) is recorded as unavailable, with the reason, when no engine can run here,
unless CI=true or ``--require containers``. ``status`` exits 1 when a recorded service is down.

Importable too (with tools/ on sys.path): ``keel_stack.Stack(state_dir).start()`` returns the same facts dict
as stack.json. One file per service (postgres, redis, s3, smtp, containers, haproxy), the app image, the Stack, and
the CLI; smtp is a mail server (aiosmtpd, STARTTLS and AUTH required) whose spool tests read. Environment:
KEEL_STACK_DIR, KEEL_PG_BIN_DIR (a system PostgreSQL bin dir), KEEL_REDIS_SERVER (another redis-server), CI.
"""

from .constants import ALL_SERVICES, REPO_ROOT, SERVICE_NAMES, SYSTEM_TOOLS
from .process import StackError, free_port, import_docker, missing_tools, port_answers
from .s3 import S3
from .stack import Stack

__all__ = ["ALL_SERVICES", "REPO_ROOT", "SERVICE_NAMES", "SYSTEM_TOOLS", "StackError", "free_port", "import_docker",
           "missing_tools", "port_answers", "S3", "Stack"]
