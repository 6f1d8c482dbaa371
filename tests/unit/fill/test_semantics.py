"""Forward-fill semantics one instrument at a time (docs/architecture.md)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from tickflow.fill import semantics as fill
from tickflow.fill.semantics import FILL_FIELDS, NEVER, InstrumentState

Fill = Callable[[InstrumentState | None, pd.DataFrame], tuple[InstrumentState, pd.DataFrame]]


def _vectorised(prior: InstrumentState | None, events: pd.DataFrame) -> tuple[InstrumentState, pd.DataFrame]:
    states, columns = fill.fill_frame({"X": prior} if prior else {}, events.assign(instrument_id="X"))
    state, out = states["X"], pd.DataFrame(columns).drop(columns="instrument_id")
    for name in FILL_FIELDS:
        out[f"{name}_as_of"] = [None if t == NEVER else int(t) for t in out[f"{name}_as_of"]]
    return state, out


@pytest.fixture(params=["loop", "vectorised"])
def fill_batch(request: pytest.FixtureRequest) -> Fill:
    """Every test holds for both implementations: the plain loop and the vectorised one the operator runs."""
    return fill.fill_batch if request.param == "loop" else _vectorised


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


@pytest.mark.parametrize("seed", range(10))
def test_a_batch_of_many_instruments_fills_each_as_if_alone(seed: int) -> None:
    """The operator fills a whole bucket of instruments at once; each must come out as filled alone."""
    rng = random.Random(200 + seed)

    def events(count: int, first_offset: int) -> list[dict[str, Any]]:
        return [
            {
                **ev(f"e{first_offset + i}", rng.randint(0, 15), first_offset + i, **fields),
                "instrument_id": rng.choice("ABCD"),
            }
            for i, fields in enumerate(
                {name: rng.choice([None, None, round(rng.uniform(1, 2), 2)]) for name in ("bid_price", "last_price")}
                | {"trade_side": rng.choice([None, "buy", "sell"])}
                for _ in range(count)
            )
        ]

    earlier, batch = events(30, 0), events(80, 100)
    batch += batch[:5]  # duplicates
    priors = {iid: fill.fill_batch(None, frame(*[e for e in earlier if e["instrument_id"] == iid]))[0] for iid in "ABC"}
    columns = ["instrument_id", "event_id", "event_time", "offset", "ingest_time", *FILL_FIELDS]
    states, out = fill.fill_frame(priors, pd.DataFrame([{c: e.get(c) for c in columns} for e in batch]))
    got = pd.DataFrame(out)
    for iid in sorted({e["instrument_id"] for e in batch}):
        alone_state, alone = fill.fill_batch(priors.get(iid), frame(*[e for e in batch if e["instrument_id"] == iid]))
        assert states[iid] == alone_state
        mine = got[got["instrument_id"] == iid].reset_index(drop=True)
        assert mine["event_time"].tolist() == alone["event_time"].tolist()
        for name in ("bid_price", "last_price", "trade_side"):
            assert [None if pd.isna(v) else v for v in mine[name]] == [None if pd.isna(v) else v for v in alone[name]]
            as_of = [None if t == NEVER else t for t in mine[f"{name}_as_of"]]
            assert as_of == [None if pd.isna(t) else t for t in alone[f"{name}_as_of"]]
