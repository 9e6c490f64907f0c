"""The shared argument specs: how merged() combines them, the health check aliases and subsets, and no_log."""

import copy
import re

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs

SHARED = ("REPOSITORY", "POSTGRES", "REDIS", "ENCRYPTION", "BACKUP", "RETENTION", "HEALTH_CHECK", "INFO_FILTERS")
# What ansible-test's validate-modules flags: such an option must say no_log=True or no_log=False itself.
LOOKS_SECRET = re.compile(r"pass(?!ive)|secret|token|key", re.I)
# The value itself is a secret (not a path to one, nor a key's id or a public key).
HOLDS_SECRET = re.compile(r"password|passphrase|secret|token|access_key", re.I)


def every_option():
    return [(group, name, spec) for group in SHARED for name, spec in getattr(specs, group).items()]


def test_merged_lets_later_parts_and_then_the_modules_own_options_win():
    first = dict(a=dict(type="str"), b=dict(type="int", default=1))
    second = dict(b=dict(type="int", default=2), c=dict(type="bool"))
    result = specs.merged(first, second, c=dict(type="str", required=True), d=dict(type="path"))
    assert result == dict(a=dict(type="str"), b=dict(type="int", default=2), c=dict(type="str", required=True),
                          d=dict(type="path"))
    assert list(first) == ["a", "b"] and list(second) == ["b", "c"]  # the shared parts are left as they were


def test_merging_postgres_and_redis_connections_keeps_the_redis_defaults_given_last():
    result = specs.merged(specs.POSTGRES, specs.REDIS)
    assert result["login_port"]["default"] == 6379 and result["login_host"]["default"] == "localhost"
    assert result["maintenance_db"] is specs.POSTGRES["maintenance_db"] and "tls" in result
    assert specs.POSTGRES["login_port"]["default"] == 5432


def test_every_alias_of_a_health_check_resolves_to_the_option_that_declares_it():
    aliases = specs.health_check_aliases()
    assert aliases["login_password"] == "password" and aliases["sslmode"] == "ssl_mode"
    assert aliases["username"] == aliases["login_user"] == "user"
    for alias, name in aliases.items():
        assert alias in specs.HEALTH_CHECK[name]["aliases"]
        assert alias not in specs.HEALTH_CHECK, "alias %s shadows an option of the same name" % alias
    declared = sum(len(spec.get("aliases", ())) for spec in specs.HEALTH_CHECK.values())
    assert len(aliases) == declared  # no alias is claimed by two options


def test_a_health_check_subset_narrows_kinds_and_options_without_touching_the_full_spec():
    before = copy.deepcopy(specs.HEALTH_CHECK)
    subset = specs.health_check_subset(("http", "tcp"), template_port=True)
    assert subset["kind"]["choices"] == ["http", "tcp"] and subset["kind"]["required"] is True
    assert subset["port"]["type"] == "str" and subset["port"]["aliases"] == ["login_port"]
    assert set(subset) < set(specs.HEALTH_CHECK)
    assert not {"password", "user", "database", "pem_file", "mounts"} & set(subset)
    assert subset["headers"]["no_log"] is True
    assert specs.HEALTH_CHECK == before  # the subset is a copy: health_probe still accepts every kind


def test_a_subset_without_template_ports_keeps_port_an_integer():
    subset = specs.health_check_subset(["postgres"])
    assert subset["port"]["type"] == "int" and subset["kind"]["choices"] == ["postgres"]


def test_options_that_look_secret_say_whether_they_are_and_those_holding_a_secret_are_never_logged():
    unsaid, logged, secrets = [], [], []
    for group, name, spec in every_option():
        names = [name] + list(spec.get("aliases", ()))
        if any(LOOKS_SECRET.search(each) for each in names) and "no_log" not in spec:
            unsaid.append("%s.%s" % (group, name))
        holds_secret = any(HOLDS_SECRET.search(each) for each in names) and spec["type"] != "path"
        if holds_secret:
            secrets.append("%s.%s" % (group, name))
        if holds_secret and spec.get("no_log") is not True:
            logged.append("%s.%s" % (group, name))
    assert unsaid == [] and logged == []
    assert {"REPOSITORY.s3_secret_key", "HEALTH_CHECK.password", "REDIS.login_password"} <= set(secrets)
