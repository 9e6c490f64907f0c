"""psql-style name patterns, table selection, and the statistics check of a restore."""

from ansible_collections.keel.ops.plugins.module_utils._postgres import catalog as pg_catalog


def test_patterns_follow_psql_rules():
    assert pg_catalog.pattern_regex("sales*").match("sales_2026")
    assert pg_catalog.pattern_regex("Sales").match("sales")  # unquoted names fold to lower case
    assert not pg_catalog.pattern_regex('"Sales"').match("sales")
    assert pg_catalog.pattern_regex("a?c").match("abc") and not pg_catalog.pattern_regex("a?c").match("abbc")


def test_table_selection():
    filters = {"schemas": ["sales"], "exclude_tables": ["sales.tmp_*"]}
    assert pg_catalog._table_selected("sales", "orders", filters)
    assert not pg_catalog._table_selected("sales", "tmp_x", filters)
    assert not pg_catalog._table_selected("audit", "log", filters)
    assert pg_catalog._table_selected("audit", "log", {"tables": ["log"]})


def test_compare_statistics_names_each_difference():
    expected = {"tables": {"a.x": 10, "a.y": 5}, "large_objects": 2}
    actual = {"tables": {"a.x": 9}, "large_objects": 2}
    assert pg_catalog.compare_statistics(expected, actual) == ["table a.x has 9 rows, the backup recorded 10",
                                                               "table a.y is missing"]
    assert pg_catalog.compare_statistics(expected, actual, tables=["a.y"]) == ["table a.y is missing"]
    assert pg_catalog.compare_statistics(expected, dict(actual, tables={"a.x": 10, "a.y": 5})) == []
