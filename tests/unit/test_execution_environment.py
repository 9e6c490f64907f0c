"""The execution environment: `ansible-builder create` makes a build context from execution-environment.yml that
installs this collection with its Python and system dependencies, and `ansible-builder introspect` finds those
dependencies in the collection itself (meta/execution-environment.yml)."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def _lines(path):
    with open(path) as handle:
        return [line.split("#")[0].strip() for line in handle if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    if not shutil.which("ansible-builder", path=BIN):
        pytest.fail("ansible-builder is not installed in this environment (requirements-dev.txt)")
    work = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(os.path.join(ROOT, name), str(work / name))
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(work)],
                   cwd=ROOT, check=True, capture_output=True)
    subprocess.run([os.path.join(BIN, "ansible-builder"), "create", "--file", "execution-environment.yml",
                    "--context", str(work / "context")], cwd=str(work), check=True, capture_output=True)
    return work / "context"


def test_the_context_installs_the_built_collection_and_its_dependencies(context):
    build = context / "_build"
    with open(str(ROOT + "/galaxy.yml")) as handle:
        version = yaml.safe_load(handle)["version"]
    tarball = "keel-ops-%s.tar.gz" % version
    assert (build / tarball).is_file()
    with open(str(build / "requirements.yml")) as handle:
        galaxy = yaml.safe_load(handle)
    assert galaxy["collections"] == [{"name": tarball, "type": "file"}]
    assert _lines(str(build / "requirements.txt")) == _lines(os.path.join(ROOT, "requirements.txt"))
    assert set(_lines(str(build / "bindep.txt"))) >= {"postgresql-client [platform:dpkg]", "age [platform:dpkg]",
                                                      "redis-tools [platform:dpkg]"}
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-core>=2.16,<2.20" in containerfile and "ansible-galaxy collection install" in containerfile


def test_introspect_finds_the_collections_own_dependencies():
    found = subprocess.run([os.path.join(BIN, "ansible-builder"), "introspect", "--sanitize",
                            os.path.join(ROOT, ".build")], check=True, capture_output=True, text=True).stdout
    data = yaml.safe_load(found.split("\n", 1)[1])
    python = [line.split("#")[0].strip() for line in data["python"]]
    assert set(python) >= set(_lines(os.path.join(ROOT, "requirements.txt")))
    assert "postgresql-client [platform:dpkg]" in [line.split("#")[0].strip() for line in data["system"]]
