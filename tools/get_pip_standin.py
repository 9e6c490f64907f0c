"""Stand-in for the get-pip bootstrap script that `ansible-test --venv` downloads from a host we cannot reach.

`make sanity` places this file where ansible-test caches that script (under a HOME inside .build/). It gives
the new virtual environment pip from the Python standard library's ensurepip, then installs what ansible-test
asked for from the package index. ensurepip runs in a child process: run in-process it disables pip's
configuration for the rest of the process.
"""

import subprocess
import sys

IGNORED = {"--no-setuptools", "--no-wheel"}


def main(argv):
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    wanted = [arg for arg in argv if arg not in IGNORED]
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + wanted)


if __name__ == "__main__":
    main(sys.argv[1:])
