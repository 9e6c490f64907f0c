"""What the benchmarks share to measure a child's peak RSS: a launcher run as `python -c LAUNCHER <report file>
<argv...>` that starts the child and writes its ru_maxrss (KiB) into the report file.

A child forked from a benchmark itself would not do: Linux counts the memory a process had before exec in its
peak, so the benchmark's own RSS (boto3, psycopg2) would be a floor under every figure. The launcher is a bare
interpreter; it also counts the grandchildren the child reaped itself."""

LAUNCHER = r"""
import os, sys
child = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_pid, status, usage = os.wait4(child, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""
