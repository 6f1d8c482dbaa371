"""The backfill's pure logic: parameters, offset planning, the archive merge rule."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime

import pytest

from tickflow.backfill.plan import PartitionRange, has_data, offsets_json, plan_chunks, resolve
from tickflow.backfill.request import BackfillRequest, InvalidBackfill, Target, parse_instruments

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def parse(start: str = "2026-11-27T09:00:00Z", end: str = "2026-11-27T10:00:00Z", **kwargs: object) -> BackfillRequest:
    return BackfillRequest.parse(start, end, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_times_are_utc_whatever_the_offset_and_naive_means_utc() -> None:
    request = parse("2026-11-27T10:00:00+01:00", "2026-11-27T10:00:00")
    assert request.start == datetime(2026, 11, 27, 9, tzinfo=UTC)
    assert request.end == datetime(2026, 11, 27, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-11-27T10:00:00Z", "2026-11-27T09:00:00Z", "is not after its start"),
        ("2026-11-27T10:00:00Z", "2026-11-27T10:00:00Z", "is not after its start"),
        ("yesterday", "2026-11-27T09:00:00Z", "start 'yesterday' is not a time"),
        ("2026-11-27T09:00:00Z", "", "end '' is not a time"),
        ("2026-11-28T09:00:00Z", "2026-11-28T10:00:00Z", "starts in the future"),
    ],
)
def test_bad_ranges_fail_in_one_sentence(start: str, end: str, message: str) -> None:
    with pytest.raises(InvalidBackfill, match=message) as failure:
        parse(start, end)
    assert "\n" not in str(failure.value)


def test_target_is_one_of_three() -> None:
    assert parse(target="HBase").target is Target.HBASE
    assert parse(target="both").writes_hbase and parse(target="both").writes_archive
    assert not parse(target="archive").writes_hbase
    with pytest.raises(InvalidBackfill, match="'kafka' is not one of hbase, archive, both"):
        parse(target="kafka")


@pytest.mark.parametrize("everything", [None, [], "", "all", "ALL", ["*"], [" "], "  ,  "])
def test_no_instruments_or_all_means_every_instrument(everything: object) -> None:
    assert parse_instruments(everything) is None  # type: ignore[arg-type]


def test_instruments_from_a_list_or_a_text_field_are_sorted_and_unique() -> None:
    assert parse_instruments(["XNAS:MSFT", "XNAS:AAPL", "XNAS:MSFT"]) == ("XNAS:AAPL", "XNAS:MSFT")
    assert parse_instruments("XNAS:MSFT, XNAS:AAPL\nXLON:VOD") == ("XLON:VOD", "XNAS:AAPL", "XNAS:MSFT")
    with pytest.raises(InvalidBackfill, match="either ids or 'all'"):
        parse_instruments(["XNAS:AAPL", "all"])


def test_a_request_gives_its_arguments_back() -> None:
    request = parse(instruments=["XNAS:AAPL"], target="archive")
    args = request.args()
    values = dict(zip(args[::2], args[1::2], strict=True))
    assert BackfillRequest.parse(values["--start"], values["--end"], [values["--instrument"]], values["--target"]) == (
        request
    )


def test_affected_dates_end_exclusive() -> None:
    assert parse("2026-11-26T23:00:00Z", "2026-11-27T00:00:00Z").affected_dates() == [date(2026, 11, 26)]
    assert parse("2026-11-25T23:00:00Z", "2026-11-27T00:00:01Z").affected_dates() == [
        date(2026, 11, 25),
        date(2026, 11, 26),
        date(2026, 11, 27),
    ]


def test_the_archive_merge_replaces_only_backfilled_instruments_inside_the_range() -> None:
    request = parse(instruments=["XNAS:AAPL"])
    assert request.replaces("XNAS:AAPL", datetime(2026, 11, 27, 9, tzinfo=UTC))  # start inclusive
    assert not request.replaces("XNAS:AAPL", datetime(2026, 11, 27, 10, tzinfo=UTC))  # end exclusive
    assert not request.replaces("XNAS:AAPL", datetime(2026, 11, 27, 8, 59, 59, tzinfo=UTC))
    assert not request.replaces("XNAS:MSFT", datetime(2026, 11, 27, 9, 30, tzinfo=UTC))
    assert parse().replaces("XNAS:MSFT", datetime(2026, 11, 27, 9, 30))  # all instruments; naive is UTC


def test_offsets_for_times_past_the_end_resolve_to_the_partition_end() -> None:
    assert resolve(-1, 42) == 42
    assert resolve(7, 42) == 7


def test_a_range_has_data_when_some_partition_has_records_in_it() -> None:
    assert not has_data([PartitionRange(0, 0, 10, 10), PartitionRange(1, 5, 5, 5)])
    assert has_data([PartitionRange(0, 0, 10, 10), PartitionRange(1, 0, 3, 4)])
    # records deleted by retention after the range's first one: what is left still counts
    assert has_data([PartitionRange(0, 8, 3, 10)])


def test_chunks_cover_every_offset_once_in_order_and_name_every_partition() -> None:
    ranges = [PartitionRange(0, 0, 5, 10), PartitionRange(1, 3, 3, 4), PartitionRange(2, 7, 7, 7)]
    chunks = plan_chunks(ranges, chunk_events=6)
    assert all(set(chunk) == {0, 1, 2} for chunk in chunks)
    for r in ranges:
        slices = [chunk[r.partition] for chunk in chunks]
        assert slices[0][0] == r.first and slices[-1][1] == r.last
        assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
    assert all(sum(to - begin for begin, to in chunk.values()) <= 6 for chunk in chunks)
    assert sum(to - begin for chunk in chunks for begin, to in chunk.values()) == 11
    assert plan_chunks([PartitionRange(0, 4, 4, 4)], 10) == []


def test_offsets_json_is_what_spark_kafka_source_takes() -> None:
    starting, ending = offsets_json("md.events", {0: (5, 9), 1: (3, 3)})
    assert json.loads(starting) == {"md.events": {"0": 5, "1": 3}}
    assert json.loads(ending) == {"md.events": {"0": 9, "1": 3}}


def test_a_request_survives_the_trip_to_the_spark_app() -> None:
    for request in (parse(instruments=["XNAS:AAPL", "XLON:VOD"], target="hbase"), parse()):
        assert BackfillRequest.from_json(request.to_json()) == request
