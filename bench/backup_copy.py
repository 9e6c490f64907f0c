"""Benchmark: keel.ops.backup_copy against boto3's own transfer of the same bytes, side by side in one run.

A file set backup of --size-mb of random data (compression none, so the artifact is as large as the data) is
taken into a local repository, then copied, best of --repeat rounds:

  local -> S3   boto3 upload_file of the artifact (reference: the S3 endpoint alone, multipart, 8 threads)
                keel backup_copy to a fresh S3 prefix                          target: <= 1.25x
  S3 -> local   boto3 download_file of it (reference)
                keel backup_copy into a fresh local repository                  target: <= 1.25x

with the peak RSS of the module process (target: under 150 MB). The S3 endpoint is the embedded stack's moto
server on the same 2 cores, which bounds both columns alike.

    .venv/bin/python bench/backup_copy.py [--size-mb 512] [--repeat 2]
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from harness import LAUNCHER  # bench/, beside this script


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "backup_copy.json")
LIMIT, RSS_LIMIT_MB = 1.25, 150


def run_module(name, module_args, workdir):
    """(seconds, result, peak RSS MB) of a module run as Ansible runs it: arguments in a 0600 file."""
    path = os.path.join(workdir, "args-%s.json" % uuid.uuid4().hex)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
    rss_file = path + ".rss"
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build"))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, rss_file, sys.executable,
                           os.path.join(ROOT, "plugins", "modules", name + ".py"), path],
                          capture_output=True, text=True, env=env, check=False)
    seconds = time.monotonic() - started
    result = json.loads(proc.stdout)
    if result.get("failed"):
        raise SystemExit("%s failed: %s" % (name, result.get("msg")))
    with open(rss_file) as handle:
        return seconds, result, int(handle.read()) / 1024.0


def s3_args(s3, prefix=""):
    return {prefix + "s3_endpoint_url": s3["endpoint_url"], prefix + "s3_region": s3["region"],
            prefix + "s3_access_key": s3["access_key"], prefix + "s3_secret_key": s3["secret_key"]}


def make_backup(workdir, size_mb):
    data = os.path.join(workdir, "data")
    os.makedirs(data)
    for index in range(4):
        with open(os.path.join(data, "blob-%d.bin" % index), "wb") as handle:
            for _block in range(size_mb // 4):
                handle.write(os.urandom(1024 * 1024))
    repo = os.path.join(workdir, "local")
    _seconds, taken, _rss = run_module("file_backup", {"repository": repo, "paths": [data], "source": "bench",
                                                       "compression": "none"}, workdir)
    archive = next(a for a in taken["artifacts"] if a["kind"] == "files")
    return repo, taken["backup_id"], os.path.join(repo, "files", "bench", taken["backup_id"], archive["name"])


def best(rounds, work):
    return min((work() for _round in range(rounds)), key=lambda row: row[0])


def run(args, s3, workdir):
    import boto3  # pylint: disable=import-outside-toplevel
    from boto3.s3.transfer import TransferConfig  # pylint: disable=import-outside-toplevel

    client = boto3.client("s3", endpoint_url=s3["endpoint_url"], region_name=s3["region"],
                          aws_access_key_id=s3["access_key"], aws_secret_access_key=s3["secret_key"])
    transfer = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=8)
    repo, backup_id, artifact = make_backup(workdir, args.size_mb)
    size = os.path.getsize(artifact)
    rows = {}

    def upload():
        key = "bench-ref/%s" % uuid.uuid4().hex
        started = time.monotonic()
        client.upload_file(artifact, s3["bucket"], key, Config=transfer)
        return time.monotonic() - started, None

    def copy_up():
        url = "s3://%s/bench-copy-%s" % (s3["bucket"], uuid.uuid4().hex[:8])
        seconds, _result, rss = run_module("backup_copy", dict(s3_args(s3, "to_"), kind="files", repository=repo,
                                                               to_repository=url), workdir)
        rows["last_remote"] = url
        return seconds, rss

    rows["upload"] = best(args.repeat, upload)
    rows["copy_up"] = best(args.repeat, copy_up)
    remote, key = rows.pop("last_remote"), "bench-ref-download"
    client.upload_file(artifact, s3["bucket"], key, Config=transfer)

    def download():
        target = os.path.join(workdir, "download-%s" % uuid.uuid4().hex)
        started = time.monotonic()
        client.download_file(s3["bucket"], key, target, Config=transfer)
        seconds = time.monotonic() - started
        os.unlink(target)
        return seconds, None

    def copy_down():
        target = os.path.join(workdir, "back-%s" % uuid.uuid4().hex[:8])
        seconds, result, rss = run_module("backup_copy", dict(s3_args(s3), kind="files", repository=remote,
                                                              to_repository=target), workdir)
        assert result["copied"] == [backup_id], result
        shutil.rmtree(target)
        return seconds, rss

    rows["download"] = best(args.repeat, download)
    rows["copy_down"] = best(args.repeat, copy_down)
    return size, rows


def report(size, rows):
    mb = size / 1e6
    print("backup_copy benchmark: one artifact of %.0f MB (random, uncompressed), best of rounds" % mb)
    machine = platform.processor() or platform.machine()
    print("machine: %s, %d cores; load average %.2f" % (machine, os.cpu_count(), os.getloadavg()[0]))
    print("%-9s %-44s %8s %8s %7s %8s  %s" % ("copy", "tool", "seconds", "MB/s", "ratio", "RSS MB", "result"))
    lines = []
    for direction, reference, keel in (("local->S3", "upload", "copy_up"), ("S3->local", "download", "copy_down")):
        ref_s, keel_s, rss = rows[reference][0], rows[keel][0], rows[keel][1]
        ratio = keel_s / ref_s
        passed = ratio <= LIMIT and rss < RSS_LIMIT_MB
        print("%-9s %-44s %8.2f %8.1f" % (direction, "boto3 %s_file (reference)" % reference, ref_s, mb / ref_s))
        print("%-9s %-44s %8.2f %8.1f %6.2fx %8.1f  %s" % (direction, "keel backup_copy (checksums proven)", keel_s,
                                                           mb / keel_s, ratio, rss, "PASS" if passed else "FAIL"))
        lines.append({"direction": direction, "reference_s": ref_s, "keel_s": keel_s, "ratio": ratio, "rss_mb": rss,
                      "pass": passed})
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import keel_stack  # pylint: disable=import-outside-toplevel

    state_dir = tempfile.mkdtemp(prefix="keel-bench-copy-", dir="/tmp")
    stack = keel_stack.Stack(state_dir)
    try:
        s3 = stack.start(services=["s3"])["s3"]
        size, rows = run(args, s3, state_dir)
        lines = report(size, rows)
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "size_bytes": size, "rows": lines}, handle, indent=2)


if __name__ == "__main__":
    main()
