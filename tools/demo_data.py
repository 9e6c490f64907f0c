"""Create the demo's data on the embedded stack: a `shop` database of random orders, (when the stack runs Redis)
sessions and carts in Redis, and the application's files under <stack>/app - uploads, configuration and the CLO
system's SQLite database - so the demo's backups have something to hold.

    .venv/bin/python tools/demo_data.py [--rows 300000]    (reads the stack's facts from $KEEL_STACK_DIR or .stack)
"""

import argparse
import json
import os

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers (id),
                     amount numeric(12, 2) NOT NULL, note text NOT NULL, created timestamptz NOT NULL);
CREATE INDEX orders_customer ON orders (customer_id);
INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['Zürich', 'Lisboa', 'Kraków', 'Ōsaka'])[1 + g %% 4]
FROM generate_series(1, 10000) g;
INSERT INTO orders SELECT g, 1 + g %% 10000, round((random() * 1000)::numeric, 2),
       md5(random()::text) || md5(random()::text), now() - g * interval '1 minute'
FROM generate_series(1, %(rows)s) g;
ANALYZE;
"""


def has_orders(params, database):
    conn = psycopg2.connect(dbname=database, **params)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.orders') IS NOT NULL")
        return cur.fetchone()[0]


def seed_redis(facts, keys=50000):
    """Sessions with a TTL and carts as hashes; skipped when the stack runs no Redis or it already has keys."""
    import redis  # only the demo's Redis part needs it

    if not facts:
        return
    client = redis.Redis(host=facts["host"], port=facts["port"], password=facts["password"], retry=None)
    try:
        if client.dbsize():
            print("demo Redis already holds data")
            return
    except redis.exceptions.ConnectionError:
        return
    with client.pipeline(transaction=False) as pipe:
        for n in range(keys):
            pipe.set("session:%d" % n, os.urandom(32).hex(), ex=86400)
            if n % 10 == 0:
                pipe.hset("cart:%d" % n, mapping={"items": n % 7 + 1, "total": "%.2f" % (n % 1000 / 7.0)})
        pipe.execute()
    print("demo Redis seeded with %d sessions and %d carts" % (keys, keys // 10))


def seed_files(state, uploads=200):
    """<state>/app: uploads/, config/ (with a .env the backup leaves out) and state/clo.db (SQLite)."""
    import sqlite3  # only the files part needs it

    app = os.path.join(state, "app")
    if os.path.exists(os.path.join(app, "state", "clo.db")):
        print("demo application files already exist")
        return
    for folder in ("uploads", "config", "state"):
        os.makedirs(os.path.join(app, folder), exist_ok=True)
    for n in range(uploads):
        with open(os.path.join(app, "uploads", "invoice-%04d.txt" % n), "w") as handle:
            handle.write("invoice %d\n%s\n" % (n, os.urandom(256).hex()))
    with open(os.path.join(app, "config", "app.yml"), "w") as handle:
        handle.write("workers: 4\ncurrency: EUR\n")
    with open(os.path.join(app, "config", ".env"), "w") as handle:
        handle.write("API_TOKEN=%s\n" % os.urandom(16).hex())
    db = sqlite3.connect(os.path.join(app, "state", "clo.db"))
    db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, phase TEXT NOT NULL)")
    db.executemany("INSERT INTO runs (phase) VALUES (?)", [("green" if n % 3 else "amber",) for n in range(1000)])
    db.commit()
    db.close()
    print("demo application files created under %s (%d uploads, config, SQLite state)" % (app, uploads))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300000)
    parser.add_argument("--database", default="shop")
    args = parser.parse_args()
    state = os.environ.get("KEEL_STACK_DIR") or os.path.join(ROOT, ".stack")
    with open(os.path.join(state, "stack.json")) as handle:
        facts = json.load(handle)
    seed_redis(facts.get("redis"))
    seed_files(state)
    pg = facts["postgres"]
    params = dict(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"])
    admin = psycopg2.connect(dbname=pg["database"], **params)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (args.database,))
        if cur.fetchone() and has_orders(params, args.database):
            print("demo database %s already exists" % args.database)
            return
        cur.execute('DROP DATABASE IF EXISTS "%s"' % args.database)  # a half-made one from an interrupted run
        cur.execute('CREATE DATABASE "%s"' % args.database)
    conn = psycopg2.connect(dbname=args.database, **params)
    with conn, conn.cursor() as cur:
        cur.execute(SCHEMA, {"rows": args.rows})
    print("demo database %s created with %d orders" % (args.database, args.rows))


if __name__ == "__main__":
    main()
