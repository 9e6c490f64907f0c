"""Create the demo's `shop` database on the embedded stack: a few tables of random orders worth backing up.

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300000)
    parser.add_argument("--database", default="shop")
    args = parser.parse_args()
    state = os.environ.get("KEEL_STACK_DIR") or os.path.join(ROOT, ".stack")
    with open(os.path.join(state, "stack.json")) as handle:
        pg = json.load(handle)["postgres"]
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
