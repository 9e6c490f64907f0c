# keel.ops: `make demo` runs the main job end to end, `make test` runs the whole suite.
# Both create (or refresh, when a requirements file changed) a virtualenv in .venv and link the collection
# into .build/ansible_collections/keel/ops, where ansible.cfg points Ansible. Nothing is written to $HOME.

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.keel-installed
BUILD := $(CURDIR)/.build
LINK := $(BUILD)/ansible_collections/keel/ops
SANITY_ROOT := $(BUILD)/sanity/ansible_collections/keel/ops
STACK := $(BIN)/python tools/stack.py
PYTEST_WORKERS ?= 2

export ANSIBLE_COLLECTIONS_PATH := $(BUILD)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_HOME := $(BUILD)/ansible_home
export ANSIBLE_LOCAL_TEMP := $(BUILD)/tmp
export PATH := $(BIN):$(PATH)

.PHONY: demo test lint sanity units integration molecule bench clean venv collection system-packages stack-stop

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

system-packages:
	@tools/install-system-packages

collection: $(STAMP)
	@mkdir -p $(dir $(LINK)) $(BUILD)/tmp
	@ln -sfn ../../.. $(LINK)

demo: system-packages collection
	$(STACK) start
	@status=0; \
	$(BIN)/python tools/demo_data.py && $(BIN)/python tools/demo.py || status=$$?; \
	$(STACK) stop; exit $$status

test: system-packages lint sanity units integration molecule

units: collection
	$(BIN)/pytest -q tests/unit

integration: system-packages collection
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) tests/integration

lint: collection
	$(BIN)/ansible-lint --profile production

# ansible-test must run from a tree laid out as ansible_collections/<namespace>/<name>: copy the files git
# knows about there, as a git repo of its own (ansible-test lists files through git). Its --venv bootstrap fetches get-pip from a host we cannot reach; a stand-in in a HOME
# under .build/ replaces it (see tools/get_pip_standin.py).
sanity: collection
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_ROOT)
	@git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t $(SANITY_ROOT)
	@cd $(SANITY_ROOT) && git init -q && git add -A  # its own repo: the outer one ignores .build/
	@version=$$($(BIN)/python tools/ansible_test_pip.py) && mkdir -p $(BUILD)/home/.ansible/test/cache && \
	  cp tools/get_pip_standin.py $(BUILD)/home/.ansible/test/cache/get_pip_$$version.py
	cd $(SANITY_ROOT) && HOME=$(BUILD)/home $(BIN)/ansible-test sanity --venv --python 3.11 --color no

molecule: collection
	for scenario in $${MOLECULE_SCENARIOS:-$$(ls molecule)}; do MOLECULE_GLOB="molecule/*/molecule.yml" $(BIN)/molecule test -s $$scenario || exit 1; done

# Each benchmark prints keel and the reference tool side by side; see BENCHMARKS.md for recorded figures.
bench: collection
	$(BIN)/python bench/health_probe.py
	$(BIN)/python bench/pg_backup.py
	$(BIN)/python bench/redis_snapshot.py
	$(BIN)/python bench/rolling_update.py
	$(BIN)/python bench/file_backup.py
	$(BIN)/python bench/backup_copy.py
	$(BIN)/python bench/disaster_recovery.py
	$(BIN)/python bench/maintenance.py

stack-stop:
	-$(STACK) stop

clean: stack-stop
	rm -rf $(BUILD) tests/output .pytest_cache
