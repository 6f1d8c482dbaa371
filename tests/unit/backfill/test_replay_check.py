"""The replay check's classification of a difference between a live record and its replayed row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tickflow.backfill.replay_check import Kind, ReplayCheck, classify, compared_fields

T = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "instrument_id": "XNAS:AAPL", "event_time": T, "event_count": 1, "ingest_time": T,
        "bid_price": 10.0, "bid_price_as_of": T, "ask_price": 10.2, "ask_price_as_of": T - timedelta(seconds=1),
        "mid": 10.1, "symbol": "AAPL", "sector": "Tech", "reference_version": 7, "fx_rate_usd": 1.0,
        "mid_usd": 10.1, "batch_id": 3, "processed_time": T,
    }  # fmt: skip
    return {**base, **changes}


def differing(live: dict[str, Any], replay: dict[str, Any]) -> list[str]:
    return [f for f in compared_fields(live) if live.get(f) != replay.get(f)]


def kind(live: dict[str, Any] | None, replay: dict[str, Any] | None) -> Kind:
    names = differing(live, replay) if live and replay else []
    return classify(live, replay, names)


def test_equal_rows_match_whatever_batch_made_them_and_when() -> None:
    assert kind(row(), row(batch_id=99, processed_time=T + timedelta(hours=1))) == Kind.MATCH


def test_a_row_on_one_side_only_is_missing_on_the_other() -> None:
    assert kind(None, row()) == Kind.MISSING_LIVE
    assert kind(row(), None) == Kind.MISSING_REPLAY


def test_another_value_of_the_same_inputs_is_a_real_difference() -> None:
    assert kind(row(), row(bid_price=10.1, mid=10.15, mid_usd=10.15)) == Kind.DIFFERENT
    assert kind(row(), row(symbol="AAPL.O")) == Kind.DIFFERENT  # the enrichment, under the same reference


def test_a_reference_change_explains_only_the_enrichment() -> None:
    assert kind(row(), row(sector="Health", reference_version=8)) == Kind.REFERENCE
    assert kind(row(), row(fx_rate_usd=0.9, mid_usd=9.09)) == Kind.REFERENCE
    # the same sector change without another reference version is not explained
    assert kind(row(), row(sector="Health")) == Kind.DIFFERENT
    # nor is a filled value that differs beside it
    assert kind(row(), row(sector="Health", reference_version=8, bid_price=9.0)) == Kind.DIFFERENT


def test_another_event_s_value_differs_with_the_batch_boundaries() -> None:
    later, earlier = T + timedelta(seconds=5), T - timedelta(seconds=5)
    # live: a late event's row shows the bid of a later event of its batch; the replay's chunk had it before
    assert kind(row(bid_price=11.0, bid_price_as_of=later, mid=10.6), row()) == Kind.BATCHING
    # the replay's chunk ended before a late trade of the row's time arrived: an older register
    assert kind(row(), row(bid_price=9.5, bid_price_as_of=earlier, mid=9.85, mid_usd=9.85)) == Kind.BATCHING
    # another event with the same value: only the as-of time differs
    assert kind(row(), row(ask_price_as_of=T - timedelta(seconds=2))) == Kind.BATCHING
    # events of one time merged in one chunk, split over two micro-batches
    assert kind(row(event_count=1), row(event_count=2, ingest_time=T + timedelta(seconds=1))) == Kind.BATCHING
    # one event's value read two ways (the same as-of time) is not explained, beside another register or alone
    assert kind(row(bid_price=11.0, bid_price_as_of=later), row(ask_price=10.3)) == Kind.DIFFERENT
    assert kind(row(), row(mid=10.2)) == Kind.DIFFERENT


def test_the_report_counts_kinds_and_keeps_examples_with_both_sides() -> None:
    check = ReplayCheck(T, T + timedelta(minutes=1), ("XNAS:AAPL",), "md.enriched")
    live, replay = row(), row(bid_price=9.0)
    check.add(kind(live, replay), live, replay, differing(live, replay))
    check.add(Kind.BATCHING, row(), row(), ["event_count"])
    assert check.failures == 1
    assert check.examples[Kind.DIFFERENT][0]["fields"] == {"bid_price": {"live": 10.0, "replay": 9.0}}
    failure = check.failure()
    assert failure is not None and "XNAS:AAPL" in failure and "bid_price" in failure and check.run_id in failure
    assert "1 different" in check.line() and "1 batching" in check.line()
