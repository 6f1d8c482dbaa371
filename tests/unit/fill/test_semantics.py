"""Forward-fill semantics one instrument at a time (docs/architecture.md)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from tickflow.fill import semantics as fill
from tickflow.fill.semantics import FILL_FIELDS, InstrumentState

Fill = Callable[[InstrumentState | None, pd.DataFrame], tuple[InstrumentState, pd.DataFrame]]


@pytest.fixture
def fill_batch() -> Fill:
    return fill.fill_batch


def ev(event_id: str, t: int, offset: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_time": t, "offset": offset, "ingest_time": 1000 + offset, **fields}


def frame(*events: dict[str, Any]) -> pd.DataFrame:
    columns = ["event_id", "event_time", "offset", "ingest_time", *FILL_FIELDS]
    return pd.DataFrame([{c: e.get(c) for c in columns} for e in events], columns=columns)


def rows(out: pd.DataFrame, *names: str) -> list[tuple[Any, ...]]:
    return [tuple(None if pd.isna(v) else v for v in r) for r in out[["event_time", *names]].itertuples(index=False)]


def test_in_order_fill_is_last_non_null_per_column(fill_batch: Fill) -> None:
    events = frame(
        ev("q1", 10, 1, bid_price=1.0, ask_price=1.2),
        ev("p1", 20, 2, last_price=1.1),
        ev("q2", 30, 3, bid_price=1.05),
        ev("t1", 40, 4, trade_price=1.07, trade_size=100, trade_side="buy"),
    )
    state, out = fill_batch(None, events)
    expected = pd.DataFrame(events)[["event_time", "bid_price", "ask_price", "last_price", "trade_price"]].ffill()
    assert rows(out, "bid_price", "ask_price", "last_price", "trade_price") == [
        tuple(None if pd.isna(v) else v for v in r) for r in expected.itertuples(index=False)
    ]
    assert state.values["bid_price"] == 1.05 and state.as_of["bid_price"] == 30
    assert out["bid_price_as_of"].tolist() == [10, 10, 30, 30]


def test_events_at_the_same_time_from_several_sources_become_one_record(fill_batch: Fill) -> None:
    _, out = fill_batch(
        None, frame(ev("q", 10, 1, bid_price=1.0), ev("p", 10, 2, last_price=2.0), ev("t", 10, 3, trade_size=5))
    )
    assert len(out) == 1
    assert rows(out, "bid_price", "last_price", "trade_size") == [(10, 1.0, 2.0, 5)]
    assert out["event_count"].tolist() == [3]


def test_at_equal_time_the_later_event_in_the_partition_wins(fill_batch: Fill) -> None:
    state, out = fill_batch(None, frame(ev("b", 10, 7, bid_price=2.0), ev("a", 10, 3, bid_price=1.0)))
    assert out["bid_price"].tolist() == [2.0] and state.offsets["bid_price"] == 7


def test_a_late_event_updates_only_fields_whose_stored_value_is_older(fill_batch: Fill) -> None:
    state, _ = fill_batch(None, frame(ev("q", 100, 1, bid_price=1.0), ev("p", 50, 2, last_price=9.0)))
    # Late: at t=70, after last_price's as-of (50) but before bid_price's (100).
    state, out = fill_batch(state, frame(ev("late", 70, 3, bid_price=0.5, last_price=8.0)))
    assert state.values["bid_price"] == 1.0 and state.as_of["bid_price"] == 100  # newer stored value kept
    assert state.values["last_price"] == 8.0 and state.as_of["last_price"] == 70  # older stored value replaced
    # Its output row carries the current state, with per-field as-of times showing what is newer.
    assert rows(out, "bid_price", "bid_price_as_of", "last_price", "last_price_as_of") == [(70, 1.0, 100, 8.0, 70)]


def test_duplicates_are_harmless_within_and_across_batches(fill_batch: Fill) -> None:
    once, out_once = fill_batch(None, frame(ev("q", 10, 1, bid_price=1.0)))
    twice, out_twice = fill_batch(None, frame(ev("q", 10, 1, bid_price=1.0), ev("q", 10, 1, bid_price=1.0)))
    assert once == twice and out_once.equals(out_twice)
    replayed, _ = fill_batch(once, frame(ev("q", 10, 1, bid_price=1.0)))
    assert replayed == once


def test_a_field_never_set_stays_null_with_no_as_of(fill_batch: Fill) -> None:
    state, out = fill_batch(None, frame(ev("q", 10, 1, bid_price=1.0)))
    assert out["trade_id"].isna().all() and out["trade_id_as_of"].isna().all()
    assert "trade_id" not in state.values


def test_state_carries_across_batches(fill_batch: Fill) -> None:
    state, _ = fill_batch(None, frame(ev("q", 10, 1, bid_price=1.0, ask_price=1.2)))
    _, out = fill_batch(state, frame(ev("t", 20, 2, trade_price=1.1)))
    assert rows(out, "bid_price", "ask_price", "trade_price") == [(20, 1.0, 1.2, 1.1)]
    assert out["bid_price_as_of"].tolist() == [10]


def test_output_at_a_time_ignores_batch_events_after_it(fill_batch: Fill) -> None:
    _, out = fill_batch(None, frame(ev("late", 5, 9, bid_price=0.9), ev("q", 10, 1, bid_price=1.0)))
    assert rows(out, "bid_price") == [(5, 0.9), (10, 1.0)]


@pytest.mark.parametrize("seed", range(20))
def test_final_state_does_not_depend_on_arrival_order_or_batching(fill_batch: Fill, seed: int) -> None:
    rng = random.Random(seed)
    events = []
    for i in range(60):
        fields = {
            name: rng.choice([None, None, round(rng.uniform(1, 2), 2)])
            for name in ("bid_price", "ask_price", "last_price")
        }
        events.append(ev(f"e{i}", rng.randint(0, 20), i, **fields))
    reference, _ = fill_batch(None, frame(*events))

    shuffled = events[:]
    rng.shuffle(shuffled)
    state: InstrumentState | None = None
    cut = sorted(rng.sample(range(1, 60), 4))
    for chunk in (shuffled[a:b] for a, b in zip([0, *cut], [*cut, 60], strict=True)):
        state, _ = fill_batch(state, frame(*chunk))
    assert state == reference


def naive_state(events: list[dict[str, Any]], name: str) -> tuple[Any, int | None]:
    """Independent reading of the contract: the non-null value with the greatest (time, offset)."""
    setters = [e for e in events if e.get(name) is not None]
    if not setters:
        return None, None
    best = max(setters, key=lambda e: (e["event_time"], e["offset"]))
    return best[name], best["event_time"]


@pytest.mark.parametrize("seed", range(10))
def test_every_output_row_equals_an_independent_computation(fill_batch: Fill, seed: int) -> None:
    rng = random.Random(100 + seed)
    earlier = [ev(f"a{i}", rng.randint(0, 30), i, bid_price=rng.choice([None, 1.0 + i])) for i in range(20)]
    batch = [
        ev(
            f"b{i}",
            rng.randint(0, 30),
            20 + i,
            bid_price=rng.choice([None, 2.0 + i]),
            last_price=rng.choice([None, 3.0 + i]),
        )
        for i in range(20)
    ]
    prior, _ = fill_batch(None, frame(*earlier))
    _, out = fill_batch(prior, frame(*batch))
    assert out["event_time"].tolist() == sorted({e["event_time"] for e in batch})
    for row in out.itertuples(index=False):
        visible = earlier + [e for e in batch if e["event_time"] <= row.event_time]
        for name in ("bid_price", "last_price"):
            value, as_of = naive_state(visible, name)
            got = getattr(row, name)
            assert (None if pd.isna(got) else got) == value
            got_as_of = getattr(row, f"{name}_as_of")
            assert (None if got_as_of is None or pd.isna(got_as_of) else got_as_of) == as_of


TRADE = ("trade_id", "trade_price", "trade_size", "trade_side")


def trade(event_id: str, t: int, offset: int, trade_id: str, price: float) -> dict[str, Any]:
    return ev(event_id, t, offset, trade_id=trade_id, trade_price=price, trade_size=100, trade_side="buy")


def test_a_cancel_of_the_last_trade_clears_it_as_of_the_cancel(fill_batch: Fill) -> None:
    state, out = fill_batch(
        None,
        frame(
            ev("q", 10, 1, bid_price=1.0),
            trade("T1", 20, 2, "T1", 1.05),
            ev("T1#cancel", 30, 3, cancelled_trade_id="T1"),
        ),
    )
    assert rows(out, *TRADE, "cancelled_trade_id", "bid_price") == [
        (10, None, None, None, None, None, 1.0),
        (20, "T1", 1.05, 100, "buy", None, 1.0),
        (30, None, None, None, None, "T1", 1.0),  # the cancel's row: the history keeps it
    ]
    assert out["trade_price_as_of"].tolist()[-1] == 30 and out["cancelled_trade_id_as_of"].tolist()[-1] == 30
    assert state.get("trade_price") == (None, 30, 3) and state.get("bid_price") == (1.0, 10, 1)


def test_a_trade_after_a_cancel_is_the_last_trade_and_a_late_older_one_is_not(fill_batch: Fill) -> None:
    state, _ = fill_batch(None, frame(trade("T1", 20, 2, "T1", 1.05), ev("c", 30, 3, cancelled_trade_id="T1")))
    _, out = fill_batch(state, frame(trade("T0", 15, 4, "T0", 1.01), trade("T2", 40, 5, "T2", 1.10)))
    assert rows(out, "trade_id", "trade_price") == [(15, None, None), (40, "T2", 1.10)]


def test_a_cancel_of_another_trade_changes_only_the_last_cancel(fill_batch: Fill) -> None:
    state, _ = fill_batch(None, frame(trade("T1", 20, 2, "T1", 1.05), trade("T2", 25, 3, "T2", 1.06)))
    state, out = fill_batch(
        state, frame(ev("c", 30, 4, cancelled_trade_id="T1"), ev("x", 31, 5, cancelled_trade_id="T9"))
    )
    assert rows(out, "trade_id", "trade_price", "cancelled_trade_id") == [
        (30, "T2", 1.06, "T1"),
        (31, "T2", 1.06, "T9"),
    ]
    assert state.get("trade_id") == ("T2", 25, 3)


def test_a_cancel_and_its_trade_give_one_state_in_one_batch_or_two_and_on_replay(fill_batch: Fill) -> None:
    events = [trade("T1", 20, 2, "T1", 1.05), ev("c", 30, 3, cancelled_trade_id="T1")]
    together, _ = fill_batch(None, frame(*events))
    first, _ = fill_batch(None, frame(events[0]))
    apart, _ = fill_batch(first, frame(events[1]))
    replayed, _ = fill_batch(apart, frame(*events))  # a replayed batch, the copy of the trade included
    assert together == apart == replayed
