"""Draw the README's picture of the Disaster Recovery Dashboard: render the sample drill
(tools/dashboard_sample.py) and let headless Chromium take a 1280x1100 screenshot of it.

    python tools/dashboard_screenshot.py [--out docs/images/dr-dashboard.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(ROOT / ".build"))  # ansible_collections/keel/ops -> the checkout (`make collection`)

import dashboard_sample  # noqa: E402  pylint: disable=wrong-import-position
import headless_chromium  # noqa: E402  pylint: disable=wrong-import-position


def _render_dashboard():
    """render_dashboard, importable from a plain checkout as tests/conftest.py makes it."""
    link = ROOT / ".build" / "ansible_collections" / "keel" / "ops"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(ROOT, link.parent))
    from ansible_collections.keel.ops.plugins.module_utils._dr import dashboard
    return dashboard.render_dashboard


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dr-dashboard.png")
    out = parser.parse_args().out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="keel-dashboard-") as work:
        page = Path(work) / "dashboard.html"
        page.write_text(_render_dashboard()(*dashboard_sample.sample()), encoding="utf-8")
        headless_chromium.screenshot(page.as_uri(), out, Path(work) / "profile")
    print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
