"""What pg_maintenance plans to vacuum and reindex, and what it refuses to touch."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._maintenance.pg_retention import rule
from ansible_collections.keel.ops.plugins.module_utils._maintenance.pg_work import (
    invalid_indexes, reindex_plan, split_name, vacuum_plan)


def table(name, dead, schema="public"):
    return dict(schema=schema, table=name, dead_tuples=dead, dead_ratio=0.1)


def index(name, bloat_ratio=0.0, size=10 << 20, valid=True, exclusion=False, schema="public"):
    return dict(schema=schema, name=name, table="t", bytes=size, bloat_ratio=bloat_ratio, valid=valid,
                exclusion=exclusion)


def test_tables_are_vacuumed_from_the_threshold_most_dead_first_and_full_only_by_name():
    tables = [table("a", 10), table("b", 5000), table("c", 2000), table("staging", 0, "etl")]
    plan = vacuum_plan(tables, 1000, full=["etl.staging"])
    assert [(t["table"], t["full"]) for t in plan] == [("b", False), ("c", False), ("staging", True)]


def test_a_name_that_matches_no_table_or_index_is_refused():
    with pytest.raises(ConfigError, match="no table public.missing in this database"):
        vacuum_plan([table("a", 0)], 1000, full=["missing"])
    with pytest.raises(ConfigError, match="no index sales.nope"):
        reindex_plan([index("i")], 18, names=["sales.nope"])


def test_names_split_at_the_first_dot_and_bare_names_are_in_public():
    assert split_name("sales.orders") == ("sales", "orders")
    assert split_name("orders") == ("public", "orders")
    assert split_name("a.b.c") == ("a", "b.c")


def test_indexes_are_chosen_by_estimated_bloat_and_size_and_invalid_ones_are_skipped():
    indexes = [index("bloated", 0.6), index("tidy", 0.1), index("tiny", 0.9, size=1000),
               index("broken", valid=False), index("excl", 0.8, exclusion=True)]
    plan, skipped = reindex_plan(indexes, 18, min_bloat=0.3, min_bytes=1 << 20)
    assert [i["name"] for i in plan] == ["bloated"]
    reasons = dict((s["name"], s["reason"]) for s in skipped)
    assert sorted(reasons) == ["broken", "excl"]
    assert reasons["broken"].startswith("invalid index") and "exclusion constraint" in reasons["excl"]


def test_named_indexes_are_rebuilt_whatever_their_bloat_but_never_without_concurrently():
    indexes = [index("tidy", 0.0), index("other", 0.9)]
    plan, _skipped = reindex_plan(indexes, 18, names=["tidy"])
    assert [i["name"] for i in plan] == ["tidy"]
    plan, skipped = reindex_plan(indexes, 11, names=["tidy"])
    assert not plan and "PostgreSQL 11 has no REINDEX CONCURRENTLY" in skipped[0]["reason"]


def test_invalid_indexes_say_whether_they_are_reindex_leftovers_and_how_to_remove_them():
    found = invalid_indexes([index("orders_v_ccnew", valid=False), index('odd"name', valid=False),
                             index("orders_v_ccold2", valid=False), index("fine")])
    assert [(i["name"], i["leftover"]) for i in found] == [
        ("orders_v_ccnew", True), ('odd"name', False), ("orders_v_ccold2", True)]
    assert found[1]["cleanup"] == 'DROP INDEX CONCURRENTLY "public"."odd""name";'


def test_a_retention_rule_gets_its_defaults_and_refuses_what_cannot_work():
    assert rule(dict(table="events", column="at", older_than_days=30)) == dict(
        schema="public", table="events", column="at", older_than_days=30.0, batch_size=5000, pause=0.5,
        max_rows=None)
    with pytest.raises(ConfigError, match="needs column"):
        rule(dict(table="events", older_than_days=3))
    with pytest.raises(ConfigError, match="older_than_days must be above 0"):
        rule(dict(table="events", column="at", older_than_days=0))
