"""Run keel.ops modules and playbooks for real from the tests.

Modules run as Ansible runs them on a managed host: the module file executed by Python with its arguments
in a JSON file (0600, never on argv). Playbooks run through ansible-playbook with this checkout's ansible.cfg.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def _env(extra=None):
    env = dict(os.environ)
    env.update(PYTHONPATH=os.path.join(ROOT, ".build"), ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"), ANSIBLE_FORCE_COLOR="0")
    env.update(extra or {})
    return env


class ModuleRun(dict):
    """The module's JSON result, plus its raw output for assertions about what was (not) printed."""

    def __init__(self, result, stdout, stderr, returncode):
        super().__init__(result)
        self.stdout, self.stderr, self.returncode = stdout, stderr, returncode


def run_module(name, args, check_mode=False, diff=False, timeout=300):
    path = os.path.join(ROOT, "plugins", "modules", name + ".py")
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        os.chmod(handle.name, 0o600)
        json.dump(payload, handle)
    try:
        proc = subprocess.run([sys.executable, path, handle.name], capture_output=True, text=True,
                              timeout=timeout, env=_env(), check=False)
    finally:
        os.unlink(handle.name)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON (rc %s):\n%s\n%s"
                             % (name, proc.returncode, proc.stdout, proc.stderr))
    return ModuleRun(result, proc.stdout, proc.stderr, proc.returncode)


def run_four_ways(name, args):
    """Check mode, real run, check-mode rerun, rerun: the sequence every module is tested with."""
    return [run_module(name, args, check_mode=check) for check in (True, False, True, False)]


def local_inventory(tmp_path, host="db1"):
    """An inventory of one host that is this machine, run with this interpreter (which has the collection's
    libraries)."""
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps({"all": {"hosts": {host: {"ansible_connection": "local",
                                                         "ansible_python_interpreter": sys.executable}}}}))
    return str(path)


def run_playbook(playbook, inventory, extra_vars=None, env=None, timeout=600):
    """Run a playbook; extra vars travel in a 0600 file (-e @file) since they may hold secrets."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        os.chmod(handle.name, 0o600)
        json.dump(extra_vars or {}, handle)
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, playbook, "-e", "@" + handle.name]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=_env(env),
                              check=False)
    finally:
        os.unlink(handle.name)


def start_module(name, args, tmp_path):
    """Start a module in the background, the way run_module runs it."""
    path = tmp_path / ("%s-args.json" % uuid.uuid4().hex)
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    os.chmod(path, 0o600)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build"))
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "plugins", "modules", name + ".py"), str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)


def wait_for_partial(repo, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _root, _dirs, files in os.walk(repo):
            if any(".partial-" in f for f in files):
                return True
        time.sleep(0.02)
    return False


def cmdlines():
    lines = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    lines.append(handle.read().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                pass
    return lines
