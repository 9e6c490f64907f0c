"""Generate (or reuse) a pgbench-like PostgreSQL database of a given size, filled with random data.

pgbench's own rows are blank padding that compresses to almost nothing, which flatters every backup tool.
These tables have pgbench's shape but random contents:

    branches(bid PK, bbalance, filler)                       one per 100,000 accounts
    tellers(tid PK, bid -> branches, tbalance, filler)       ten per branch
    accounts(aid PK, bid -> branches, abalance, filler)      the bulk: ~100 random hex characters per row
    history(hid PK, tid -> tellers, bid, aid -> accounts, delta, mtime, filler), index on aid; a tenth of accounts
    bench_meta(key PK, value)                                what was generated, so a rerun can reuse it

Fillers are hex digests of random numbers (md5): 4 bits of entropy per character, so they compress about
2:1, like a lot of real text and ids do.  Data is made server-side (INSERT ... SELECT generate_series) in a
few parallel statements; keys, indexes and foreign keys come afterwards (faster than maintaining them while
loading), then VACUUM (FREEZE, ANALYZE) so that no backup run pays for setting hint bits on first read.

    from pgdata import ensure_database
    info = ensure_database(postgres_facts, "keel_bench_1536mb", 1.5)
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2

GENERATOR_VERSION = "2"  # bump when the schema or the data changes, so old databases are regenerated
GB = 1024 ** 3
ACCOUNTS_PER_BRANCH = 100_000  # pgbench's ratio
# Bytes of database per account row, all tables and indexes included (measured on PostgreSQL 18: heap row
# ~141 bytes, primary key ~23, plus a tenth of a history row with its two indexes, ~13).
BYTES_PER_ACCOUNT = 177
EMPTY_DATABASE = 7_700_000  # what a new database weighs before any table: system catalogs
MIN_ACCOUNTS = 100_000

HEX100 = "md5(random()::text) || md5(random()::text) || left(md5(random()::text), 36)"  # 100 random hex chars

SCHEMA = """
DROP TABLE IF EXISTS history, accounts, tellers, branches, bench_meta;
CREATE TABLE branches (bid int NOT NULL, bbalance int NOT NULL, filler text);
CREATE TABLE tellers (tid int NOT NULL, bid int NOT NULL, tbalance int NOT NULL, filler text);
CREATE TABLE accounts (aid int NOT NULL, bid int NOT NULL, abalance int NOT NULL, filler text);
CREATE TABLE history (hid bigint NOT NULL, tid int NOT NULL, bid int NOT NULL, aid int NOT NULL,
                      delta int NOT NULL, mtime timestamptz NOT NULL, filler text);
CREATE TABLE bench_meta (key text PRIMARY KEY, value text NOT NULL);
"""


def connect(conn_facts, dbname):
    return psycopg2.connect(host=conn_facts["host"], port=conn_facts["port"], user=conn_facts["user"],
                            password=conn_facts["password"], dbname=dbname, connect_timeout=5,
                            gssencmode="disable", sslmode="disable")


def execute(conn_facts, dbname, sql, args=None):
    """Run one statement in autocommit mode (VACUUM and CREATE DATABASE refuse transactions)."""
    conn = connect(conn_facts, dbname)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            # More sort memory makes the big primary key build one pass instead of many.
            cur.execute("SET maintenance_work_mem = '512MB'")
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def run_parallel(conn_facts, dbname, statements, workers):
    """Run statements on `workers` connections at once; the first error is raised."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(execute, conn_facts, dbname, sql) for sql in statements]:
            future.result()


def database_size(conn_facts, dbname):
    return execute(conn_facts, dbname, "SELECT pg_database_size(current_database())")[0][0]


def read_meta(conn_facts, dbname):
    """The bench_meta of an existing database, or None when it does not exist or was not made here."""
    if not execute(conn_facts, "postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)):
        return None
    if not execute(conn_facts, dbname, "SELECT to_regclass('bench_meta') IS NOT NULL")[0][0]:
        return None
    return dict(execute(conn_facts, dbname, "SELECT key, value FROM bench_meta"))


def ranges(total, parts):
    """Split 1..total into `parts` contiguous (first, last) ranges."""
    step = -(-total // parts)
    return [(first, min(first + step - 1, total)) for first in range(1, total + 1, step)]


def generate(conn_facts, dbname, size_gb, workers):
    accounts = max(MIN_ACCOUNTS, int((size_gb * GB - EMPTY_DATABASE) / BYTES_PER_ACCOUNT))
    branches = -(-accounts // ACCOUNTS_PER_BRANCH)  # every account needs its branch
    history = accounts // 10
    execute(conn_facts, "postgres", f'DROP DATABASE IF EXISTS "{dbname}"')
    execute(conn_facts, "postgres", f'CREATE DATABASE "{dbname}"')
    execute(conn_facts, dbname, SCHEMA)

    # Load: one statement per range, `workers` at a time (each one is a server backend busy on a core).
    load = [f"INSERT INTO branches SELECT i, (random() * 1e6)::int, left(md5(random()::text), 22)"
            f" FROM generate_series(1, {branches}) i",
            f"INSERT INTO tellers SELECT i, 1 + (i - 1) / 10, (random() * 1e6)::int, left(md5(random()::text), 22)"
            f" FROM generate_series(1, {branches * 10}) i"]
    load += [f"INSERT INTO accounts SELECT i, 1 + (i - 1) / {ACCOUNTS_PER_BRANCH}, (random() * 1e6)::int - 500000,"
             f" {HEX100} FROM generate_series({first}, {last}) i" for first, last in ranges(accounts, workers * 2)]
    load += [f"INSERT INTO history SELECT i, t, 1 + (t - 1) / 10, 1 + (random() * ({accounts} - 1))::int,"
             f" (random() * 10000)::int - 5000, now() - random() * interval '365 days', left(md5(random()::text), 22)"
             f" FROM (SELECT i, 1 + (random() * ({branches * 10} - 1))::int AS t"
             f" FROM generate_series({first}, {last}) i) s" for first, last in ranges(history, workers)]
    run_parallel(conn_facts, dbname, load, workers)

    # Keys and indexes after the load; the two big builds side by side.
    run_parallel(conn_facts, dbname, [
        "ALTER TABLE accounts ADD PRIMARY KEY (aid)",
        "ALTER TABLE branches ADD PRIMARY KEY (bid); ALTER TABLE tellers ADD PRIMARY KEY (tid);"
        " ALTER TABLE history ADD PRIMARY KEY (hid); CREATE INDEX history_aid ON history (aid)",
    ], workers)
    execute(conn_facts, dbname,
            "ALTER TABLE tellers ADD FOREIGN KEY (bid) REFERENCES branches;"
            " ALTER TABLE accounts ADD FOREIGN KEY (bid) REFERENCES branches;"
            " ALTER TABLE history ADD FOREIGN KEY (tid) REFERENCES tellers;"
            " ALTER TABLE history ADD FOREIGN KEY (aid) REFERENCES accounts")
    run_parallel(conn_facts, dbname, [f"VACUUM (FREEZE, ANALYZE) {table}"
                                      for table in ("accounts", "history", "tellers", "branches")], workers)
    meta = {"generator_version": GENERATOR_VERSION, "size_gb": repr(float(size_gb)), "accounts": str(accounts),
            "history": str(history), "branches": str(branches)}
    for key, value in meta.items():
        execute(conn_facts, dbname, "INSERT INTO bench_meta VALUES (%s, %s)", (key, value))
    # Flush now, so a checkpoint does not land in the middle of a timed run.
    execute(conn_facts, dbname, "CHECKPOINT")
    return meta


def ensure_database(conn_facts, dbname, size_gb, workers=None, log=print):
    """Make sure `dbname` holds the generated data for `size_gb`; reuse it when it already does.

    Returns {database, size_bytes, accounts, history, generated, seconds}.
    """
    meta = read_meta(conn_facts, dbname)
    wanted = {"generator_version": GENERATOR_VERSION, "size_gb": repr(float(size_gb))}
    started = time.monotonic()
    generated = not (meta and all(meta.get(key) == value for key, value in wanted.items()))
    if generated:
        workers = workers or max(2, os.cpu_count() or 2)
        log(f"generating {dbname} ({size_gb} GB of random data, {workers} parallel statements)...")
        meta = generate(conn_facts, dbname, size_gb, workers)
    seconds = time.monotonic() - started
    size = database_size(conn_facts, dbname)
    log(f"{dbname}: {size / 1024 ** 2:.0f} MB, {int(meta['accounts']):,} accounts"
        + (f", generated in {seconds:.1f} s" if generated else " (reused)"))
    return {"database": dbname, "size_bytes": size, "accounts": int(meta["accounts"]),
            "history": int(meta["history"]), "generated": generated, "seconds": round(seconds, 2)}
