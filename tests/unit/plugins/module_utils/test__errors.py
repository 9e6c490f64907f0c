import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, module_failures


class FakeModule:
    def __init__(self):
        self.failed = None

    def fail_json(self, **result):
        self.failed = result
        raise SystemExit(1)


def _broken_engine():
    return {}["missing"]


def test_keel_errors_become_their_message_with_context():
    module = FakeModule()
    with pytest.raises(SystemExit):
        with module_failures(module, "pg_backup (state=present)"):
            raise ConfigError("jobs must be at least 1")
    assert module.failed == {"msg": "pg_backup (state=present): jobs must be at least 1"}


def test_a_bug_becomes_json_naming_where_it_broke_and_that_it_is_a_bug():
    module = FakeModule()
    with pytest.raises(SystemExit):
        with module_failures(module, "redis_snapshot (state=restored)"):
            _broken_engine()
    msg = module.failed["msg"]
    assert msg.startswith("redis_snapshot (state=restored): unexpected KeyError in _broken_engine")
    assert "this is a bug" in msg.lower() and "'missing'" in msg
    assert "Traceback" in module.failed["exception"]


def test_exit_passes_through():
    module = FakeModule()
    with pytest.raises(SystemExit):
        with module_failures(module, "health_probe"):
            raise SystemExit(0)
    assert module.failed is None
