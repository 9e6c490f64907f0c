"""The app image of the fleet: a rootfs tarball with a static busybox, built in memory (no image can be pulled
here) and byte-identical for identical inputs.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from .constants import APP_IMAGE_DIR, APP_NAME, APP_VARIANTS
from .process import StackError, find_tool, is_static_elf


def busybox_path() -> Path:
    found = find_tool("busybox")
    if not found:
        raise StackError("busybox is not installed (apt-get install busybox-static)")
    path = Path(found).resolve()
    if not is_static_elf(path):
        raise StackError(f"{path} is not statically linked (apt-get install busybox-static)")
    return path


def build_app_rootfs(variant: str) -> bytes:
    """The rootfs tar of one image variant; byte-identical for identical inputs."""
    mode, health = APP_VARIANTS[variant]
    page = f"<!doctype html>\n<title>{APP_NAME} {variant}</title>\n<p>{APP_NAME} version {variant}</p>\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in ("bin", "etc", "etc/keel-app", "tmp", "www"):
            _tar_add(tar, directory, mode=0o1777 if directory == "tmp" else 0o755)
        _tar_add(tar, "bin/busybox", busybox_path().read_bytes(), 0o755)
        _tar_add(tar, "bin/sh", link="busybox")
        _tar_add(tar, "bin/app", (APP_IMAGE_DIR / "app.sh").read_bytes(), 0o755)
        _tar_add(tar, "bin/error-responder", (APP_IMAGE_DIR / "error-responder.sh").read_bytes(), 0o755)
        _tar_add(tar, "etc/passwd", b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        _tar_add(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        _tar_add(tar, "etc/keel-app/mode", f"{mode}\n".encode())
        _tar_add(tar, "etc/keel-app/version", f"{variant}\n".encode())
        _tar_add(tar, "www/health", (json.dumps(health) + "\n").encode())
        _tar_add(tar, "www/index.html", page.encode())
    return buf.getvalue()


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes | None = None, mode: int = 0o644,
             link: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0  # reproducible bytes -> a stable digest -> no needless rebuilds
    if link is not None:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, mode
    else:
        info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data) if data is not None else None)
