"""What a restore takes out of a backup and checks it against: the artifact of the right database, the
schemas and tables a partial restore brings back, and the statistics a manifest must record."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import Backup
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._postgres import restore

ID = "20261201T020000000Z-abcdef"
STATS = {"tables": {"sales.orders": 10, "sales.customers": 3, "audit.log": 7, "public.documents": 1}}


def backup(*databases, statistics=None):
    artifacts = [{"name": "globals.sql.zst", "kind": "globals"}]
    artifacts += [{"name": "%s.dump.zst" % name, "kind": "database", "database": name} for name in databases]
    return Backup({"id": ID, "artifacts": artifacts, "statistics": statistics or {}})


class Options:
    def __init__(self, schemas=None, tables=None):
        self.restore_schemas, self.restore_tables = schemas, tables


def test_the_database_artifact_is_the_one_named_or_the_only_one():
    assert restore._database_artifact(backup("shop"), None)["database"] == "shop"  # pylint: disable=protected-access
    cluster = backup("shop", "crm")
    assert restore._database_artifact(cluster, "crm")["name"] == "crm.dump.zst"  # pylint: disable=protected-access
    with pytest.raises(ConfigError, match=r"holds 2 databases \(shop, crm\): name the one to restore"):
        restore._database_artifact(cluster, None)  # pylint: disable=protected-access
    with pytest.raises(KeelError, match="holds no database billing; it holds shop, crm"):
        restore._database_artifact(cluster, "billing")  # pylint: disable=protected-access


@pytest.mark.parametrize("options, schemas, names, expected", [
    (Options(), [], [], ["audit.log", "public.documents", "sales.customers", "sales.orders"]),
    (Options(schemas=["sales"]), ["sales"], [], ["sales.customers", "sales.orders"]),
    (Options(tables=["sales.orders", "log"]), ["sales"], ["orders", "log"], ["audit.log", "sales.orders"]),
])
def test_a_partial_restore_brings_back_what_was_named(options, schemas, names, expected):
    assert restore._restore_schemas(options) == schemas  # pylint: disable=protected-access
    assert restore._table_names(options.restore_tables) == names  # pylint: disable=protected-access
    assert restore._expected_tables(STATS, options) == expected  # pylint: disable=protected-access


def test_a_manifest_without_the_statistics_of_its_database_is_refused():
    with pytest.raises(IntegrityError, match="records no statistics for database shop"):
        restore._statistics(backup("shop"), {"database": "shop"})  # pylint: disable=protected-access
    found = restore._statistics(backup("shop", statistics={"shop": STATS}), {"database": "shop"})  # pylint: disable=protected-access
    assert found is STATS
