#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: pg_maintenance
short_description: VACUUM, concurrent REINDEX, data retention and a health report for one PostgreSQL database
version_added: 0.1.0
description:
  - Maintains one database the way a weekly window should, without locking it.
  - Data retention first - rows older than N days deleted from named tables in batches, a pause between them.
  - Then C(VACUUM (ANALYZE)) table by table, most dead tuples first, on tables with at least
    O(vacuum_min_dead_tuples); C(VACUUM FULL) only on the tables O(vacuum_full) names.
  - Then C(REINDEX INDEX CONCURRENTLY) index by index, on the indexes O(reindex_indexes) names, or else on B-tree
    indexes whose estimated bloat reaches O(reindex_min_bloat). Invalid indexes, and the C(_ccnew)/C(_ccold)
    leftovers of an interrupted concurrent reindex, are reported with the statement that removes them, never
    rebuilt.
  - Every statement runs outside a transaction under O(lock_timeout); a table or index whose lock is not granted
    in time is skipped and reported in RV(skipped), and the run goes on.
  - Last a report - dead-tuple ratios, bloat estimates, unused indexes, the largest tables, long-running and
    idle-in-transaction sessions, top queries from C(pg_stat_statements) when the extension exists, connections
    against C(max_connections) and the database size.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.postgres
attributes:
  check_mode:
    support: full
    details: Plans every step and counts the rows retention would delete; changes nothing.
  diff_mode:
    support: none
requirements:
  - psycopg2
options:
  database:
    description: The database to maintain.
    type: str
    required: true
  vacuum:
    description: Run C(VACUUM (ANALYZE)) on the tables that need it.
    type: bool
    default: true
  vacuum_min_dead_tuples:
    description: A table needs vacuuming from this many dead tuples; lower it to V(1) to vacuum any table with one.
    type: int
    default: 1000
  vacuum_full:
    description:
      - Tables (C(schema.table), a bare name is in C(public)) to C(VACUUM FULL) instead. FULL rewrites the table
        under an exclusive lock that blocks reads and writes until it is done.
    type: list
    elements: str
    default: []
  reindex:
    description: Rebuild indexes with C(REINDEX INDEX CONCURRENTLY) (PostgreSQL 12 and later).
    type: bool
    default: true
  reindex_indexes:
    description:
      - Indexes (C(schema.index)) to rebuild on every run. Unset, the indexes are chosen by their estimated bloat.
    type: list
    elements: str
    default: []
  reindex_min_bloat:
    description: Share (0 to 1) of a B-tree index estimated as bloat from which it is rebuilt.
    type: float
    default: 0.3
  reindex_min_size_mb:
    description: Indexes smaller than this many MiB are never rebuilt for their bloat.
    type: float
    default: 1
  drop_leftovers:
    description:
      - Drop the invalid C(_ccnew)/C(_ccold) leftovers of an interrupted concurrent reindex. A leftover of a
        reindex of this run is always dropped.
    type: bool
    default: false
  lock_timeout:
    description: Seconds each statement waits for its lock before the step is skipped.
    type: float
    default: 5
  retention:
    description: Rows to delete by age. Table and column names are checked against the catalog first.
    type: list
    elements: dict
    default: []
    suboptions:
      schema:
        description: Schema of the table.
        type: str
        default: public
      table:
        description: The table.
        type: str
        required: true
      column:
        description: Its timestamp or date column that says how old a row is.
        type: str
        required: true
      older_than_days:
        description: Rows older than this many days go.
        type: float
        required: true
      batch_size:
        description: Rows per DELETE, each its own transaction.
        type: int
        default: 5000
      pause:
        description: Seconds between batches.
        type: float
        default: 0.5
      max_rows:
        description: Stop after this many rows in one run.
        type: int
  report:
    description: Return RV(report).
    type: bool
    default: true
  top:
    description: Entries in each ranked list of the report.
    type: int
    default: 10
  min_seconds:
    description: Sessions count as long-running, or idle in a transaction too long, from this many seconds.
    type: float
    default: 300
  include_queries:
    description: Report query texts of sessions and top queries; they may hold literal values.
    type: bool
    default: true
  query_length:
    description: Query texts are cut to this many characters.
    type: int
    default: 200
notes:
  - The bloat figures are estimates from the planner's statistics (no extension needed); a relation never
    analyzed, or an index on an expression, has none.
  - The connecting role needs to own the tables (or be superuser, or hold C(pg_maintain) on PostgreSQL 17) for
    VACUUM and REINDEX, and C(DELETE) on the retention tables.
"""

EXAMPLES = r"""
- name: Weekly maintenance of the shop database
  keel.ops.pg_maintenance:
    login_host: db1.example.internal
    login_user: maintenance
    login_password: "{{ vault_pg_maintenance_password }}"
    database: shop
    lock_timeout: 3
    retention:
      - table: audit_log
        column: created_at
        older_than_days: 90
        batch_size: 10000
  register: maintained

- name: Rebuild one index by name, and rewrite one table that lost most of its rows
  keel.ops.pg_maintenance:
    database: shop
    reindex_indexes: [sales.orders_customer]
    vacuum_full: [sales.import_staging]
"""

RETURN = r"""
server_version:
  description: Version of the server.
  returned: always
  type: str
retention:
  description:
    - Per retention rule - the rule, C(cutoff) (ISO 8601), C(deleted) and C(batches); in check mode C(matched), the
      rows that would go.
  returned: always
  type: list
  elements: dict
vacuumed:
  description:
    - Tables vacuumed (in check mode, to vacuum) - C(schema), C(table), C(full), C(dead_tuples) and C(dead_ratio)
      before, C(dead_tuples_after) and C(seconds).
  returned: always
  type: list
  elements: dict
reindexed:
  description: Indexes rebuilt (to rebuild) - C(schema), C(name), C(table), C(bytes), C(bloat_ratio), C(bytes_after), C(seconds).
  returned: always
  type: list
  elements: dict
skipped:
  description: Steps not done, each with C(step), its object and C(reason) (a lock not granted in time, an invalid index, ...).
  returned: always
  type: list
  elements: dict
invalid_indexes:
  description: Invalid indexes - C(schema), C(name), C(table), C(bytes), C(leftover) (of an interrupted reindex) and C(cleanup).
  returned: always
  type: list
  elements: dict
dropped_leftovers:
  description: Leftovers dropped through O(drop_leftovers).
  returned: always
  type: list
  elements: dict
report:
  description:
    - C(size) (C(database), C(bytes), C(stats_since)), C(dead_tuples), C(table_bloat), C(index_bloat),
      C(unused_indexes), C(largest_tables), C(top_queries) (null with C(top_queries_unavailable) saying why),
      C(connections), C(long_running), C(idle_in_transaction) and C(blocked).
  returned: when O(report) is true
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._maintenance.postgres import check_options, maintain
from ansible_collections.keel.ops.plugins.module_utils._postgres.conninfo import Connection

RETENTION_RULE = dict(
    schema=dict(type="str", default="public"),
    table=dict(type="str", required=True),
    column=dict(type="str", required=True),
    older_than_days=dict(type="float", required=True),
    batch_size=dict(type="int", default=5000),
    pause=dict(type="float", default=0.5),
    max_rows=dict(type="int"),
)

ARGUMENT_SPEC = dict(
    specs.POSTGRES,
    **specs.AUDIT,
    database=dict(type="str", required=True),
    vacuum=dict(type="bool", default=True),
    vacuum_min_dead_tuples=dict(type="int", default=1000),
    vacuum_full=dict(type="list", elements="str", default=[]),
    reindex=dict(type="bool", default=True),
    reindex_indexes=dict(type="list", elements="str", default=[]),
    reindex_min_bloat=dict(type="float", default=0.3),
    reindex_min_size_mb=dict(type="float", default=1),
    drop_leftovers=dict(type="bool", default=False),
    lock_timeout=dict(type="float", default=5),
    retention=dict(type="list", elements="dict", default=[], options=RETENTION_RULE),
    report=dict(type="bool", default=True),
    top=dict(type="int", default=10),
    min_seconds=dict(type="float", default=300),
    include_queries=dict(type="bool", default=True),
    query_length=dict(type="int", default=200),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "pg_maintenance"):
        check_options(params)
        conn = Connection.from_params(params).connect(params["database"])
        try:
            result = maintain(conn, params, module.check_mode)
        finally:
            conn.close()
        module.exit_json(database=params["database"], **result)


if __name__ == "__main__":
    main()
