"""A PostgreSQL database worth backing up, and the fingerprints that prove a restore reproduced it."""

import contextlib
import os
import uuid

import psycopg2
import pytest
from ansible_run import run_module

SCHEMA_SQL = r"""
CREATE SCHEMA sales;
CREATE SCHEMA audit;
CREATE TABLE sales.customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    city text,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_city ON sales.customers (city);
CREATE TABLE sales.orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES sales.customers (id),
    amount numeric(12, 2) NOT NULL CHECK (amount >= 0),
    note text,
    tags jsonb
);
CREATE INDEX orders_customer ON sales.orders (customer_id);
CREATE TABLE audit.log (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), what text);
CREATE FUNCTION audit.record_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit.log (what) VALUES ('order ' || NEW.id || ' for ' || NEW.amount);
    RETURN NEW;
END $$;
CREATE TRIGGER orders_audit AFTER INSERT ON sales.orders FOR EACH ROW EXECUTE FUNCTION audit.record_order();
CREATE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE amount > 500;
CREATE SEQUENCE sales.invoice_numbers START 1000;
CREATE TABLE public.documents (id int PRIMARY KEY, blob oid);
"""

DATA_SQL = r"""
INSERT INTO sales.customers (name, city)
SELECT 'Kunde ' || g || ' Müller-Ødegård ✓', (ARRAY['Zürich', 'São Paulo', '東京', 'Kraków'])[1 + g %% 4]
FROM generate_series(1, %(customers)s) g;
INSERT INTO sales.orders (customer_id, amount, note, tags)
SELECT 1 + g %% %(customers)s, round((random() * 1000)::numeric, 2), md5(random()::text),
       jsonb_build_object('n', g, 'emoji', '🚀')
FROM generate_series(1, %(orders)s) g;
SELECT setval('sales.invoice_numbers', 1234);
"""

FINGERPRINT_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname IN ('public', 'sales', 'audit') ORDER BY 1, 2
"""


@contextlib.contextmanager
def scratch_database(pg, prefix):
    """A database of a test's own, named `prefix` and a random suffix, dropped afterwards."""
    name = "%s_%s" % (prefix, uuid.uuid4().hex[:8])
    admin = connect(pg)
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE "%s"' % name)
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        admin.close()


def connect(pg, database=None):
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"],
                            dbname=database or pg["database"])
    conn.autocommit = True
    return conn


def create_database(pg, name, customers=200, orders=2000):
    """A database with schemas, indexes, FKs, sequences, a view, a function, a trigger, large objects,
    non-ASCII text and a role with grants."""
    admin = connect(pg)
    with admin.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        cur.execute('CREATE DATABASE "%s" TEMPLATE template0 ENCODING \'UTF8\'' % name)
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'keel_reader'")
        if not cur.fetchone():
            cur.execute("CREATE ROLE keel_reader NOLOGIN")
    admin.close()
    conn = connect(pg, name)
    with conn.cursor() as cur:
        cur.execute(SCHEMA_SQL)
        cur.execute(DATA_SQL, {"customers": customers, "orders": orders})
        cur.execute("GRANT USAGE ON SCHEMA sales TO keel_reader")
        cur.execute("GRANT SELECT ON ALL TABLES IN SCHEMA sales TO keel_reader")
        for i in range(3):
            cur.execute("SELECT lo_from_bytea(0, %s)", (os.urandom(2048 + i),))
            cur.execute("INSERT INTO public.documents VALUES (%s, %s)", (i, cur.fetchone()[0]))
    conn.close()


def fingerprints(pg, database):
    """md5 of every table's ordered rows, the sequence position, the grants and the large objects' content."""
    conn = connect(pg, database)
    result = {}
    with conn.cursor() as cur:
        cur.execute(FINGERPRINT_SQL)
        for schema, table in cur.fetchall():
            cur.execute('SELECT count(*), md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), \'\')) '
                        'FROM "%s"."%s" t' % (schema, table))
            result["%s.%s" % (schema, table)] = cur.fetchone()
        cur.execute("SELECT last_value FROM sales.invoice_numbers")
        result["sequence"] = cur.fetchone()[0]
        cur.execute("SELECT md5(string_agg(lo_get(blob)::text, '' ORDER BY id)) FROM public.documents")
        result["large_objects"] = cur.fetchone()[0]
        cur.execute("SELECT has_table_privilege('keel_reader', 'sales.orders', 'SELECT')")
        result["grant"] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'orders_audit'")
        result["trigger"] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM sales.big_orders")
        result["view_rows"] = cur.fetchone()[0]
    conn.close()
    return result


def database_exists(pg, name):
    conn = connect(pg)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        found = cur.fetchone() is not None
    conn.close()
    return found


def fill_random(pg, database, megabytes):
    """A table of incompressible rows, so a dump takes long enough to interrupt."""
    conn = connect(pg, database)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS public.bulk (id bigserial PRIMARY KEY, payload bytea)")
        cur.execute("INSERT INTO public.bulk (payload) SELECT decode(string_agg(md5(random()::text), ''), 'hex') "
                    "FROM generate_series(1, %s * 1024) g, generate_series(1, 64) h GROUP BY g", (megabytes,))
    conn.close()


def conn_args(pg):
    return dict(login_host=pg["host"], login_port=pg["port"], login_user=pg["user"],
                login_password=pg["password"], bin_dir=pg["bin_dir"])


def s3_args(s3):
    return dict(s3_endpoint_url=s3["endpoint_url"], s3_region=s3["region"], s3_access_key=s3["access_key"],
                s3_secret_key=s3["secret_key"])


def backup(pg, repo, database, **extra):
    return run_module("pg_backup", dict(conn_args(pg), repository=repo, database=database, **extra))


def restore(pg, repo, database, target, **extra):
    return run_module("pg_backup", dict(conn_args(pg), state="restored", repository=repo, database=database,
                                        target_database=target, **extra))


@pytest.fixture
def big_db(postgres):
    name = "bulk_%s" % uuid.uuid4().hex[:8]
    create_database(postgres, name)
    fill_random(postgres, name, 96)
    return name


# gzip at level 9 runs at a few MB/s: slow enough that a second run or a SIGKILL lands mid-backup.
SLOW = dict(compression="gzip", compression_level=9)
