"""The record schema: every record has every field, in the schema's order, and no others."""

import pytest

from benchmarks.records import RECORD_FIELDS, groups, make_record, ok


def test_a_record_has_every_field_in_schema_order():
    rec = make_record(benchmark="throughput", status="ok", samples_per_s=10.0)
    assert list(rec) == list(RECORD_FIELDS)
    assert rec["samples_per_s"] == 10.0 and rec["curve"] is None


def test_a_record_rejects_a_field_outside_the_schema():
    with pytest.raises(KeyError, match="samples_per_sec"):
        make_record(samples_per_sec=10.0)


def test_queries_keep_successful_records_and_group_in_order():
    recs = [
        make_record(workload="mlp", batch_size=1, status="ok", samples_per_s=5.0),
        make_record(workload="cnn", batch_size=1, status="error"),
        make_record(workload="mlp", batch_size=8, status="ok", samples_per_s=9.0),
    ]
    assert ok(recs, workload="mlp") == [recs[0], recs[2]]
    assert list(groups(recs, ("workload",))) == [("mlp",), ("cnn",)]
