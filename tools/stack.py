"""The embedded stack's command line: start, status, stop, stop-service, start-service (see keel_stack/)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from keel_stack.cli import main  # noqa: E402  (after the path is set)

if __name__ == "__main__":
    main()
