"""The backfill's pure logic: parameters, offset planning, the archive merge rule."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime

import pytest

from tickflow.backfill.plan import (
    PartitionRange,
    choose_snapshot,
    describe,
    has_data,
    offsets_json,
    plan_chunks,
    resolve,
    warm_from,
)
from tickflow.backfill.request import BackfillRequest, InvalidBackfill, Target, parse_instruments
from tickflow.fill.snapshot import SnapshotInfo

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
    with pytest.raises(InvalidBackfill, match="'kafka' is not one of hbase, archive, both, check"):
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


def snapshot(snapshot_id: str, offsets: dict[int, int], topic: str = "md.events") -> SnapshotInfo:
    return SnapshotInfo(snapshot_id, 7, topic, offsets, 2, 10, datetime(2026, 11, 27, 8))


# partition 0: records 100..199 retained, the range from 150; partition 1: 40..90, the range from 60
WARM_RANGES = [PartitionRange(0, 100, 150, 200), PartitionRange(1, 40, 60, 90)]


def test_the_newest_snapshot_taken_before_the_range_and_still_retained_is_chosen() -> None:
    newest_first = [
        snapshot("after-the-range", {0: 151, 1: 50}),  # partition 0 is past the range's first record
        snapshot("other-topic", {0: 120, 1: 50}, topic="md.other"),
        snapshot("fits", {0: 150, 1: 60}),  # exactly at range_first: nothing to warm up
        snapshot("older-fits", {0: 110, 1: 45}),
        snapshot("expired", {0: 99, 1: 41}),  # retention deleted offset 99 of partition 0
    ]
    assert choose_snapshot(newest_first, "md.events", WARM_RANGES) == newest_first[2]
    assert choose_snapshot(newest_first[3:], "md.events", WARM_RANGES) == newest_first[3]
    assert choose_snapshot(newest_first[4:], "md.events", WARM_RANGES) is None
    assert choose_snapshot([], "md.events", WARM_RANGES) is None


def test_a_snapshot_needs_an_offset_for_every_partition_with_records() -> None:
    assert choose_snapshot([snapshot("missing", {0: 120})], "md.events", WARM_RANGES) is None
    assert choose_snapshot([snapshot("extra", {0: 120, 1: 50, 2: 0})], "md.events", WARM_RANGES) is None
    with_empty = [*WARM_RANGES, PartitionRange(2, 30, 30, 30)]  # no records left in partition 2
    assert choose_snapshot([snapshot("ok", {0: 120, 1: 50})], "md.events", with_empty) is not None
    assert choose_snapshot([snapshot("ok", {0: 120, 1: 50, 2: 12})], "md.events", with_empty) is not None
    assert choose_snapshot([snapshot("beyond-end", {0: 120, 1: 50, 2: 31})], "md.events", with_empty) is None


def test_a_chosen_snapshot_moves_the_start_of_the_read_and_the_counts() -> None:
    ranges = [*WARM_RANGES, PartitionRange(2, 30, 30, 30)]
    assert describe(ranges) == {"partitions": 3, "records": 150, "in_range": 80}
    warm = warm_from(ranges, snapshot("s", {0: 120, 1: 50}))
    assert [r.read_from for r in warm] == [120, 50, 30]
    assert describe(warm) == {"partitions": 3, "records": 120, "in_range": 80}
    chunks = plan_chunks(warm, chunk_events=1000)
    assert chunks == [{0: (120, 200), 1: (50, 90), 2: (30, 30)}]


def test_offsets_json_is_what_spark_kafka_source_takes() -> None:
    starting, ending = offsets_json("md.events", {0: (5, 9), 1: (3, 3)})
    assert json.loads(starting) == {"md.events": {"0": 5, "1": 3}}
    assert json.loads(ending) == {"md.events": {"0": 9, "1": 3}}


def test_a_request_survives_the_trip_to_the_spark_app() -> None:
    for request in (parse(instruments=["XNAS:AAPL", "XLON:VOD"], target="hbase"), parse()):
        assert BackfillRequest.from_json(request.to_json()) == request
