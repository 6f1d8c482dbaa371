"""The comparison of md:latest with the topic's last record and the snapshot, the examples kept, the report."""

from __future__ import annotations

import json
from datetime import datetime

from tickflow.fill.semantics import InstrumentState
from tickflow.hbase.layout import EventLayout, encode
from tickflow.reconcile.compare import (
    Problem,
    Status,
    build_report,
    classify,
    classify_all,
    last_per_key,
    masked,
    record_cells,
    snapshot_cells,
    to_repair,
)
from tickflow.schemas import load
from tickflow.settings import REPO_ROOT
from tickflow.warehouse import sql_string

LAYOUT = EventLayout.from_schema(load("tickflow.md.EnrichedEvent", REPO_ROOT / "schemas"))
T = 1_790_000_000_000_000  # µs


def record(instrument: str = "A", at: int = T, **fields: object) -> dict[str, object]:
    return {"instrument_id": instrument, "event_time": at, "event_count": 1, "enriched": False,
            "ingest_time": at, "processed_time": at, "batch_id": 1, **fields}  # fmt: skip


def as_row(cells: dict[bytes, tuple[bytes, int]]) -> dict[bytes, tuple[bytes, int]]:
    return dict(cells)


def test_the_row_the_sink_wrote_matches() -> None:
    expected = record_cells(LAYOUT, record(bid_price=1.5, bid_price_as_of=T - 1000))
    assert classify("A", as_row(expected), expected, None).status is Status.MATCHED


def test_a_newer_cell_in_hbase_is_not_a_mismatch() -> None:
    expected = record_cells(LAYOUT, record(bid_price=1.5, bid_price_as_of=T))
    newer = {column: (b"other", at + 1) for column, (_, at) in expected.items()}
    assert classify("A", newer, expected, None).status is Status.MATCHED


def test_an_absent_row_or_cell_is_missing() -> None:
    expected = record_cells(LAYOUT, record(bid_price=1.5, bid_price_as_of=T))
    assert classify("A", None, expected, None).status is Status.MISSING
    without = {c: v for c, v in expected.items() if c != b"f:bid_price"}
    finding = classify("A", without, expected, None)
    assert finding.status is Status.MISSING
    assert [(d.column, d.problem) for d in finding.differences] == [("f:bid_price", Problem.ABSENT)]


def test_an_older_cell_or_other_bytes_at_the_same_time_is_stale() -> None:
    expected = record_cells(LAYOUT, record(bid_price=1.5, bid_price_as_of=T))
    older = {**expected, b"f:bid_price": (encode(LAYOUT.types["bid_price"], 1.4), T // 1000 - 5)}
    assert classify("A", older, expected, None).differences[0].problem is Problem.OLDER
    overwritten = {**expected, b"f:bid_price": (encode(LAYOUT.types["bid_price"], 9.9), T // 1000)}
    finding = classify("A", overwritten, expected, None)
    assert finding.status is Status.STALE
    assert finding.differences[0].problem is Problem.DIFFERS


def test_hbase_must_be_at_least_as_new_as_the_snapshot() -> None:
    state = InstrumentState({"ask_price": 2.0}, {"ask_price": T}, {"ask_price": 7})
    snapshot = snapshot_cells(LAYOUT, state)
    assert snapshot == {b"f:ask_price": (encode(LAYOUT.types["ask_price"], 2.0), T // 1000)}
    stale = {b"f:ask_price": (encode(LAYOUT.types["ask_price"], 1.0), T // 1000 - 1)}
    finding = classify("A", stale, None, snapshot)
    assert (finding.status, finding.differences[0].against) == (Status.STALE, "snapshot")
    assert snapshot_cells(LAYOUT, state, until_us=T - 1) == {}, "a register newer than the cut-off is not expected"


TRADE = ("trade_id", "trade_price", "trade_size", "trade_side")


def cancel(at: int = T, trade_id: str = "T1") -> dict[str, object]:
    """The last record of an instrument whose last event cancelled the trade its registers held."""
    cleared = {name: None for name in TRADE} | {f"{name}_as_of": at for name in TRADE}
    return {**record(at=at, cancelled_trade_id=trade_id, cancelled_trade_id_as_of=at), **cleared}


def test_a_cleared_register_is_expected_as_the_empty_cell_and_matches_it() -> None:
    expected = record_cells(LAYOUT, cancel())
    assert expected[b"f:trade_price"] == (b"", T // 1000)
    assert expected[b"f:cancelled_trade_id"] == (b"T1", T // 1000)
    assert classify("A", as_row(expected), expected, None).status is Status.MATCHED


def test_a_cleared_register_hbase_lacks_or_holds_older_is_missing_or_stale() -> None:
    expected = record_cells(LAYOUT, cancel())
    without = {c: v for c, v in expected.items() if c != b"f:trade_price"}  # the old sink: null wrote nothing
    finding = classify("A", without, expected, None)
    assert finding.status is Status.MISSING
    assert [(d.column, d.problem) for d in finding.differences] == [("f:trade_price", Problem.ABSENT)]
    cancelled = {**expected, b"f:trade_price": (encode(LAYOUT.types["trade_price"], 101.5), T // 1000 - 2)}
    finding = classify("A", cancelled, expected, None)  # still the cancelled trade's price
    assert (finding.status, finding.differences[0].problem) == (Status.STALE, Problem.OLDER)
    same_time = {**expected, b"f:trade_price": (encode(LAYOUT.types["trade_price"], 101.5), T // 1000)}
    assert classify("A", same_time, expected, None).differences[0].problem is Problem.DIFFERS
    newer_trade = {**expected, b"f:trade_price": (encode(LAYOUT.types["trade_price"], 102.0), T // 1000 + 1)}
    assert classify("A", newer_trade, expected, None).status is Status.MATCHED


def test_a_cleared_register_of_the_snapshot_is_expected_as_the_empty_cell() -> None:
    state = InstrumentState({"trade_price": None, "bid_price": 1.5}, {"trade_price": T, "bid_price": T - 1000},
                            {"trade_price": 9, "bid_price": 8})  # fmt: skip
    snapshot = snapshot_cells(LAYOUT, state)
    assert snapshot == {
        b"f:trade_price": (b"", T // 1000),
        b"f:bid_price": (encode(LAYOUT.types["bid_price"], 1.5), (T - 1000) // 1000),
    }
    assert classify("A", as_row(snapshot), None, snapshot).status is Status.MATCHED
    assert classify("A", {b"f:bid_price": snapshot[b"f:bid_price"]}, None, snapshot).status is Status.MISSING


def test_a_row_neither_the_topic_nor_the_snapshot_explains_is_extra() -> None:
    found = classify_all({"X": {b"e:symbol": (b"X", 1)}}, {}, {})
    assert found["X"].status is Status.EXTRA
    assert to_repair(found, {}) == []


def test_report_counts_keeps_a_few_sorted_examples_and_says_what_remains() -> None:
    expected = record_cells(LAYOUT, record(bid_price=1.5, bid_price_as_of=T))
    topic = {f"M{i:02d}": expected for i in range(8)}
    topic["OK"] = expected
    found = classify_all({"OK": expected, "Z": {b"e:symbol": (b"Z", 1)}}, topic, {})
    assert sorted(to_repair(found, topic)) == [f"M{i:02d}" for i in range(8)]
    report = build_report("run", datetime(2026, 1, 1), None, "md.enriched", found, limit=3)
    assert (report.counts[Status.MISSING], report.counts[Status.MATCHED], report.counts[Status.EXTRA]) == (8, 1, 1)
    assert (report.instruments_checked, report.remaining, report.repaired) == (10, 8, 0)
    examples = json.loads(report.examples_json())
    assert [e["instrument_id"] for e in examples["missing"]] == ["M00", "M01", "M02"]
    assert examples["extra"] == ["Z"]
    assert "8 instruments of md:latest still missing or stale" in (report.failure() or "")
    assert "repair=true" in (report.failure() or "")


def test_after_a_repair_the_repaired_match_and_masked_cells_are_named() -> None:
    expected = record_cells(LAYOUT, record(bid_price=1.5, bid_price_as_of=T))
    found = classify_all({}, {"A": expected, "B": expected}, {})
    after = {"A": classify("A", expected, expected, None), "B": classify("B", None, expected, None)}
    assert masked(after) == ["B"]
    report = build_report("run", datetime(2026, 1, 1), "s1", "md.enriched", found, after)
    assert (report.repaired, report.remaining, report.masked, report.repair) == (1, 1, 1, True)
    assert "delete markers" in (report.failure() or "")
    assert report.line().endswith("1 repaired, 1 mismatches remain")


def test_last_per_key_keeps_the_later_window_and_the_last_in_a_window() -> None:
    found: dict[str, tuple[int, bytes]] = {}
    last_per_key(found, [("A", 8, b"a8"), ("B", 9, b"b9")])  # the newest window first
    last_per_key(found, [("A", 1, b"a1"), ("C", 2, b"c2"), ("C", 3, b"c3"), (None, 4, b"x"), ("D", 5, None)])
    assert found == {"A": (8, b"a8"), "B": (9, b"b9"), "C": (3, b"c3")}


def test_sql_strings_escape_quotes_and_backslashes() -> None:
    assert sql_string("""it's a \\"json\\" """) == """'it\\'s a \\\\"json\\\\" '"""
