"""What the embedded stack is made of: where it lives, the names, users and labels its services use, and every
system program it or the tests run, with the Debian package that brings it.
"""

from __future__ import annotations

from pathlib import Path


TOOLS_DIR = Path(__file__).resolve().parent.parent  # tools/
REPO_ROOT = TOOLS_DIR.parent
APP_IMAGE_DIR = TOOLS_DIR / "app_image"
DEFAULT_STATE_DIR = REPO_ROOT / ".stack"
LOOPBACK = "127.0.0.1"
ALL_SERVICES = ("postgres", "redis", "s3", "smtp", "containers")
SERVICE_NAMES = ALL_SERVICES + ("haproxy",)
PG_USER = "keel"
PG_DATABASE = "keel"
PG_RUN_USER = "keel-stack"  # unprivileged system user for PostgreSQL when we are root
S3_BUCKET = "keel-backups"
S3_REGION = "us-east-1"
APP_NAME = "keel-app"
APP_LABELS = {"keel.stack": "1", "app": APP_NAME}
APP_VARIANTS = {  # variant -> (mode, what /health answers); see tools/app_image/app.sh
    "v1": ("static", {"status": "ok", "version": "v1"}),
    "v2": ("static", {"status": "ok", "version": "v2"}),
    "broken": ("error", {"status": "error", "version": "broken"}),
}


# Every program from a Debian package that the stack or the tests run, with the package that brings it;
# tools/install-system-packages installs each of them, and a unit test keeps the two lists in step.
SYSTEM_TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "slirp4netns": "slirp4netns",  # podman's user-mode networking (published ports); a recommends, not a depends
    "haproxy": "haproxy",
    "busybox": "busybox-static",
    "/usr/lib/postgresql/15/bin/postgres": "postgresql-15",
    "/usr/lib/postgresql/15/bin/pg_dump": "postgresql-15",
    "/usr/bin/redis-server": "redis-server",
    "/usr/bin/redis-check-rdb": "redis-server",
    "/usr/lib/python3/dist-packages/aiosmtpd": "python3-aiosmtpd",  # the mail server, run by Debian's python3
    "/usr/bin/chromium": "chromium",  # headless, for the DR dashboard's browser test and its screenshot
    "/usr/bin/python3": "python3",  # runs keel-wal as PostgreSQL's unprivileged user, who cannot reach our venv
}


CONTAINER_TOOLS = ("podman", "runc", "slirp4netns", "haproxy", "busybox")
SUN_PATH_MAX = 107  # unix socket paths longer than this cannot be bound
LOG_TAIL_LINES = 15
