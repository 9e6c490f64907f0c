"""The redis probe checks host names over TLS when it validates certificates."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._probe import kinds
from ansible_collections.keel.ops.plugins.module_utils._probe.status import CheckResult


class FakeRedis:
    """Stands in for the redis module: records what the probe asks of redis.Redis."""

    class exceptions:
        class RedisError(Exception):
            pass

        class AuthenticationError(RedisError):
            pass

    def __init__(self):
        self.options = None

    def Redis(self, **options):
        self.options = options
        return self

    def ping(self):
        raise self.exceptions.RedisError("not really connecting")

    def close(self):
        pass


def redis_check(**extra):
    check = dict(kinds.CHECK_KINDS["redis"].options, host="cache.example", tls=True, ca_cert="/ca.pem")
    check.update(extra)
    return check


@pytest.mark.parametrize("validate_certs, cert_reqs, check_hostname", [
    (True, "required", True), (False, "none", False)])
def test_redis_over_tls_checks_the_host_name_when_it_validates_certificates(monkeypatch, validate_certs, cert_reqs,
                                                                            check_hostname):
    fake = FakeRedis()
    monkeypatch.setattr(kinds, "redis", fake)
    result = CheckResult("cache", "redis", "cache.example:6379")
    kinds.probe_redis(redis_check(validate_certs=validate_certs), result, 2, {})
    assert result.status == "critical"
    assert fake.options["ssl"] is True and fake.options["ssl_ca_certs"] == "/ca.pem"
    assert fake.options["ssl_cert_reqs"] == cert_reqs
    assert fake.options["ssl_check_hostname"] is check_hostname
