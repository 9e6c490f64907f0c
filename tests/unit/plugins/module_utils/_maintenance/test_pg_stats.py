"""The bloat estimate pg_maintenance chooses indexes by, on figures worked out by hand."""

from ansible_collections.keel.ops.plugins.module_utils._maintenance.pg_stats import (
    bloat, dead_ratio, expected_pages, index_bloat, table_bloat)


def index(**figures):
    found = dict(method="btree", has_expression=False, key_width=4.0, estimated_rows=10000, bytes=8192 * 40,
                 fillfactor=90)
    found.update(figures)
    return found


def test_expected_pages_fill_each_page_to_its_fillfactor():
    # (8192 - 40) * 0.9 = 7336.8 usable bytes; 20-byte entries: 366 a page; 10000 of them: 28 pages
    assert expected_pages(10000, 20, 8192, 90, 40) == 28
    assert expected_pages(0, 20, 8192, 90, 40) == 0
    assert expected_pages(None, 20, 8192, 90, 40) is None and expected_pages(10, None, 8192, 90, 40) is None


def test_a_btree_on_an_int_column_is_estimated_from_its_entries_and_metapage():
    # entry: align(8 + 4) + 4 = 20 bytes; 28 leaf pages + the metapage = 29 of its 40 pages are needed
    assert index_bloat(index(), 8192) == (11 * 8192, 0.275)
    assert index_bloat(index(bytes=8192 * 29), 8192) == (0, 0.0)


def test_indexes_the_estimate_knows_nothing_about_have_none():
    for unknown in (dict(method="gin"), dict(has_expression=True), dict(key_width=None), dict(estimated_rows=-1)):
        assert index_bloat(index(**unknown), 8192) == (None, None)


def test_a_table_is_estimated_from_its_row_width_header_and_line_pointer():
    # row: align(24 + 36) + 4 = 68 bytes; (8192 - 24) usable: 120 rows a page; 12000 rows: 100 pages
    table = dict(row_width=36.0, estimated_rows=12000, table_bytes=8192 * 400, fillfactor=100)
    assert table_bloat(table, 8192) == (300 * 8192, 0.75)
    assert table_bloat(dict(table, row_width=None), 8192) == (None, None)


def test_bloat_is_never_negative_and_empty_relations_have_none():
    assert bloat(8192, 5, 8192) == (0, 0.0)
    assert bloat(0, 0, 8192) == (None, None)


def test_dead_ratio_is_the_share_of_dead_among_all_tuples():
    assert dead_ratio(dict(live_tuples=300, dead_tuples=100)) == 0.25
    assert dead_ratio(dict(live_tuples=0, dead_tuples=0)) == 0.0
