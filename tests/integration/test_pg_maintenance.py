"""pg_maintenance against the stack's real PostgreSQL: dead tuples that VACUUM removes, a bloated index rebuilt
concurrently that stays valid and used, invalid indexes reported and left alone, batched retention that keeps the
newer rows, a locked table skipped rather than waited on, and the report."""

import os
import shutil
import tempfile
import time

import keel_stack as stack_tool  # tools/keel_stack, put on sys.path by conftest.py
import pytest
from ansible_run import run_module
from conftest import unavailable
from pg_fixtures import conn_args, connect, scratch_database


@pytest.fixture
def scratch(postgres):
    """A database of its own; its tables turn autovacuum off so that nothing but the module vacuums them."""
    with scratch_database(postgres, "keel_maint") as name:
        yield name


def sql(postgres, database, *statements):
    conn = connect(postgres, database)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()  # a backend's table statistics reach the server when it ends


def wait_for_dead_tuples(postgres, database, table, at_least):
    for _attempt in range(100):
        [(dead,)] = sql(postgres, database, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = '%s'" % table)
        if dead >= at_least:
            return dead
        time.sleep(0.1)
    raise AssertionError("the statistics never showed %d dead tuples in %s (last %d)" % (at_least, table, dead))


def maintain(postgres, database, check_mode=False, **options):
    result = run_module("pg_maintenance", dict(conn_args(postgres), database=database, **options),
                        check_mode=check_mode)
    assert result.returncode == 0, result.get("msg")
    assert postgres["password"] not in result.stdout
    return result


def filenode(postgres, database, index):
    [(node, valid)] = sql(postgres, database, "SELECT pg_relation_filenode('%s'), indisvalid FROM pg_index "
                          "WHERE indexrelid = '%s'::regclass" % (index, index))
    return node, valid


def test_vacuum_removes_the_dead_tuples_of_a_table_with_many_updates_and_a_rerun_has_nothing_to_do(postgres, scratch):
    sql(postgres, scratch, "CREATE TABLE churn (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false)",
        "CREATE TABLE quiet (id int) WITH (autovacuum_enabled = false)",
        "INSERT INTO churn SELECT g, 0 FROM generate_series(1, 20000) g", "INSERT INTO quiet VALUES (1)",
        "UPDATE churn SET v = v + 1", "UPDATE churn SET v = v + 1")
    dead = wait_for_dead_tuples(postgres, scratch, "churn", 20000)
    options = dict(reindex=False, vacuum_min_dead_tuples=100)
    planned, done, replanned, rerun = (maintain(postgres, scratch, check, **options)
                                       for check in (True, False, True, False))
    assert planned["changed"] and [t["table"] for t in planned["vacuumed"]] == ["churn"]
    assert planned["vacuumed"][0]["dead_tuples"] == dead and planned["vacuumed"][0]["full"] is False
    assert done["changed"] and done["vacuumed"][0]["dead_tuples_after"] == 0 and not done["skipped"]
    [(after, analyzed)] = sql(postgres, scratch, "SELECT n_dead_tup, last_analyze IS NOT NULL FROM pg_stat_user_tables "
                              "WHERE relname = 'churn'")
    assert after == 0 and analyzed
    assert not replanned["changed"] and not replanned["vacuumed"]
    assert not rerun["changed"] and not rerun["vacuumed"]


def test_a_bloated_index_is_rebuilt_concurrently_and_is_still_valid_and_used(postgres, scratch):
    sql(postgres, scratch, "CREATE TABLE items (id int, v int) WITH (autovacuum_enabled = false)",
        "INSERT INTO items SELECT g, g FROM generate_series(1, 30000) g", "CREATE INDEX items_v ON items (v)",
        *["UPDATE items SET v = v + 1"] * 5, "ANALYZE items")  # statistics, as autovacuum would have gathered
    before, _valid = filenode(postgres, scratch, "items_v")
    options = dict(reindex_min_size_mb=0.1, vacuum_min_dead_tuples=1)
    planned = maintain(postgres, scratch, True, **options)
    assert [i["name"] for i in planned["reindexed"]] == ["items_v"] and planned["reindexed"][0]["bloat_ratio"] >= 0.3
    assert filenode(postgres, scratch, "items_v")[0] == before
    done = maintain(postgres, scratch, **options)
    [rebuilt] = done["reindexed"]
    assert rebuilt["name"] == "items_v" and rebuilt["bytes_after"] < rebuilt["bytes"] and not done["skipped"]
    after, valid = filenode(postgres, scratch, "items_v")
    assert after != before and valid
    plan = sql(postgres, scratch, "SET enable_seqscan = off", "EXPLAIN SELECT id FROM items WHERE v = 100")
    assert "items_v" in " ".join(line for (line,) in plan)
    assert sql(postgres, scratch, "SET enable_seqscan = off", "SELECT id FROM items WHERE v = 105") == [(100,)]
    again = maintain(postgres, scratch, **options)
    assert not again["reindexed"] and not again["changed"]


def test_invalid_indexes_and_reindex_leftovers_are_reported_not_rebuilt(postgres, scratch):
    sql(postgres, scratch, "CREATE TABLE dupes (v int)", "INSERT INTO dupes SELECT g % 10 FROM generate_series(1, 1000) g")
    for name in ("dupes_unique", "dupes_v_ccnew"):  # a failed CREATE UNIQUE INDEX CONCURRENTLY leaves it invalid
        conn = connect(postgres, scratch)
        with pytest.raises(Exception, match="could not create unique index"):
            conn.cursor().execute("CREATE UNIQUE INDEX CONCURRENTLY %s ON dupes (v)" % name)
        conn.close()
    before = filenode(postgres, scratch, "dupes_unique")
    result = maintain(postgres, scratch, reindex_indexes=["public.dupes_unique"])
    assert not result["reindexed"] and not result["changed"]
    [skipped] = [s for s in result["skipped"] if s["name"] == "dupes_unique"]
    assert skipped["step"] == "reindex" and "invalid index" in skipped["reason"]
    invalid = dict((i["name"], i) for i in result["invalid_indexes"])
    assert invalid["dupes_unique"]["leftover"] is False and invalid["dupes_v_ccnew"]["leftover"] is True
    assert invalid["dupes_v_ccnew"]["cleanup"] == 'DROP INDEX CONCURRENTLY "public"."dupes_v_ccnew";'
    assert filenode(postgres, scratch, "dupes_unique") == before and before[1] is False
    planned = maintain(postgres, scratch, True, drop_leftovers=True)
    assert [i["name"] for i in planned["dropped_leftovers"]] == ["dupes_v_ccnew"] and planned["changed"]
    assert sql(postgres, scratch, "SELECT count(*) FROM pg_class WHERE relname = 'dupes_v_ccnew'") == [(1,)]
    dropped = maintain(postgres, scratch, drop_leftovers=True)
    assert [i["name"] for i in dropped["dropped_leftovers"]] == ["dupes_v_ccnew"]
    assert [i["name"] for i in dropped["invalid_indexes"]] == ["dupes_unique"]
    assert sql(postgres, scratch, "SELECT relname FROM pg_class WHERE relname LIKE 'dupes_%' ORDER BY 1") \
        == [("dupes_unique",)]


def test_batched_retention_deletes_the_old_rows_and_leaves_the_newer(postgres, scratch):
    sql(postgres, scratch, "CREATE TABLE events (id serial PRIMARY KEY, at timestamptz NOT NULL, what text)",
        "INSERT INTO events (at, what) SELECT now() - interval '40 days' - g * interval '1 minute', 'old' "
        "FROM generate_series(1, 2500) g",
        "INSERT INTO events (at, what) SELECT now() - interval '1 day', 'new' FROM generate_series(1, 500) g")
    rule = dict(table="events", column="at", older_than_days=30, batch_size=1000, pause=0)
    options = dict(retention=[rule], vacuum=False, reindex=False, report=False)
    counted = maintain(postgres, scratch, True, **options)
    assert counted["changed"] and counted["retention"][0]["matched"] == 2500 and counted["retention"][0]["deleted"] == 0
    assert sql(postgres, scratch, "SELECT count(*) FROM events") == [(3000,)]
    done = maintain(postgres, scratch, **options)
    assert done["changed"] and done["retention"][0]["deleted"] == 2500 and done["retention"][0]["batches"] == 3
    assert sql(postgres, scratch, "SELECT what, count(*) FROM events GROUP BY 1") == [("new", 500)]
    again = maintain(postgres, scratch, **options)
    assert not again["changed"] and again["retention"][0]["deleted"] == 0
    options["retention"] = [dict(rule, older_than_days=0.5, max_rows=120)]
    limited = maintain(postgres, scratch, **options)
    assert limited["retention"][0]["deleted"] == 120 and limited["retention"][0]["batches"] == 1


@pytest.mark.parametrize("rule, message", [
    (dict(table="events; DROP TABLE events", column="at"), 'no table column public.events; DROP TABLE events.at'),
    (dict(table="events", column="what"), "public.events.what is text; it must be a timestamp or a date"),
])
def test_a_retention_rule_that_names_no_timestamp_column_is_refused(postgres, scratch, rule, message):
    sql(postgres, scratch, "CREATE TABLE events (at timestamptz, what text)", "INSERT INTO events VALUES (now(), 'x')")
    result = run_module("pg_maintenance", dict(conn_args(postgres), database=scratch,
                                               retention=[dict(rule, older_than_days=1)]))
    assert result["failed"] and message in result["msg"], result["msg"]
    assert sql(postgres, scratch, "SELECT count(*) FROM events") == [(1,)]


def test_a_locked_table_is_skipped_at_the_lock_timeout_and_the_rest_maintained(postgres, scratch):
    sql(postgres, scratch, *["CREATE TABLE %s (v int) WITH (autovacuum_enabled = false)" % t for t in ("busy", "free")],
        *["INSERT INTO %s SELECT generate_series(1, 500)" % t for t in ("busy", "free")],
        "DELETE FROM busy", "DELETE FROM free")
    wait_for_dead_tuples(postgres, scratch, "free", 500)
    holder = connect(postgres, scratch)
    holder.autocommit = False
    holder.cursor().execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
    try:
        result = maintain(postgres, scratch, vacuum_min_dead_tuples=1, lock_timeout=0.5, reindex=False, report=False)
    finally:
        holder.rollback()
        holder.close()
    assert [t["table"] for t in result["vacuumed"]] == ["free"]
    [skipped] = result["skipped"]
    assert skipped["table"] == "busy" and skipped["step"] == "vacuum" and "lock timeout" in skipped["reason"]


def test_the_report_names_unused_indexes_the_largest_tables_and_the_sessions(postgres, scratch):
    sql(postgres, scratch, "CREATE TABLE big (id int PRIMARY KEY, v int, u int UNIQUE)",
        "INSERT INTO big SELECT g, g, g FROM generate_series(1, 5000) g", "CREATE INDEX big_v ON big (v)",
        "CREATE TABLE small (id int)", "ANALYZE")
    idle = connect(postgres, scratch)
    idle.autocommit = False
    idle.cursor().execute("SELECT 1")
    try:
        result = maintain(postgres, scratch, True, min_seconds=0)
    finally:
        idle.rollback()
        idle.close()
    report = result["report"]
    assert [i["name"] for i in report["unused_indexes"]] == ["big_v"]
    assert [t["table"] for t in report["largest_tables"]][:2] == ["big", "small"]
    assert report["size"]["database"] == scratch and report["size"]["bytes"] > 0
    assert report["connections"]["used"] >= 2 and report["connections"]["max"] > 0
    assert any(s["database"] == scratch for s in report["idle_in_transaction"])
    assert report["top_queries"] is None and "pg_stat_statements" in report["top_queries_unavailable"]
    assert not result["changed"]


@pytest.fixture
def statements_postgres():
    """A PostgreSQL of its own with pg_stat_statements loaded (shared_preload_libraries needs a restart)."""
    state = tempfile.mkdtemp(prefix="keel-pg-statements-")
    os.chmod(state, 0o755)  # the server runs as an unprivileged user and must traverse it
    stack = stack_tool.Stack(state)
    try:
        facts = stack.start_service("postgres")["postgres"]
        conn = connect(facts)
        conn.cursor().execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        conn.close()
        stack.stop_service("postgres")
        facts = stack.start_service("postgres")["postgres"]
    except stack_tool.StackError as error:
        unavailable("postgres: %s" % error)
    try:
        yield facts
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_the_report_names_the_top_queries_when_pg_stat_statements_is_there(statements_postgres):
    pg = statements_postgres
    sql(pg, pg["database"], "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "CREATE TABLE IF NOT EXISTS probe (v int)", "INSERT INTO probe SELECT generate_series(1, 20000)",
        *["SELECT count(*) FROM probe WHERE v > %d" % i for i in range(5)])
    found = maintain(pg, pg["database"], True, top=3)
    queries = found["report"]["top_queries"]
    assert found["report"]["top_queries_unavailable"] is None and 0 < len(queries) <= 3
    assert all(q["calls"] >= 1 and q["total_ms"] >= 0 and q["user"] == pg["user"] for q in queries)
    assert any("probe" in q["query"] for q in queries)
    hidden = maintain(pg, pg["database"], True, include_queries=False)
    assert hidden["report"]["top_queries"] and all("query" not in q for q in hidden["report"]["top_queries"])
