"""The source simulators: deterministic, realistic enough, each source filling its own fields."""

from __future__ import annotations

import numpy as np
import pytest

from tickflow.sources.simulator import Source, generators, split_rate, walk
from tickflow.sources.universe import build_universe, tick_size_for

START = 1_795_793_405_000_000
OWN_FIELDS = {
    Source.QUOTES: {"bid_price", "bid_size", "ask_price", "ask_size"},
    Source.PRICES: {"last_price", "close_price", "reference_price"},
    Source.TRADES: {"trade_id", "trade_price", "trade_size", "trade_side"},
}
COMMON = {"event_id", "instrument_id", "source", "event_time", "sequence"}


def events(seed: int, count: int = 3000) -> list[dict[str, object]]:
    rates = {Source.QUOTES: 7000.0, Source.PRICES: 1000.0, Source.TRADES: 2000.0}
    return [e for g in generators(build_universe(200, seed), rates, START, seed) for e in g.batch(count)]


def test_same_seed_same_events_other_seed_other_events() -> None:
    assert events(11) == events(11)
    assert events(11) != events(12)


def test_universe_is_deterministic_unique_and_realistic() -> None:
    universe = build_universe(500, 7)
    assert universe == build_universe(500, 7)
    assert len({i.instrument_id for i in universe}) == 500
    assert {"XNAS:AAPL", "XLON:VOD", "XETR:SAP"} <= {i.instrument_id for i in universe}
    for instrument in universe:
        assert instrument.tick_size > 0 and instrument.lot_size > 0
        assert instrument.currency in {"USD", "EUR", "GBP", "CHF", "JPY", "HKD"}
        assert len(instrument.isin) == 12


@pytest.mark.parametrize("source", list(Source))
def test_each_source_fills_only_its_own_fields(source: Source) -> None:
    for event in events(3):
        if event["source"] == source.value:
            assert set(event) == COMMON | OWN_FIELDS[source]
            assert all(event[f] is not None for f in OWN_FIELDS[source])


def test_quotes_keep_bid_below_ask_on_the_tick_grid() -> None:
    ticks = {i.instrument_id: i.tick_size for i in build_universe(200, 3)}
    quotes = [e for e in events(3) if e["source"] == "quotes"]
    assert quotes
    for quote in quotes:
        bid, ask, tick = quote["bid_price"], quote["ask_price"], ticks[str(quote["instrument_id"])]
        assert isinstance(bid, float) and isinstance(ask, float)
        assert 0 < bid < ask
        assert abs(bid / tick - round(bid / tick)) < 1e-6
        assert abs(ask / tick - round(ask / tick)) < 1e-6


def test_event_times_follow_the_rate_and_sequences_increase() -> None:
    (quotes,) = generators(build_universe(10, 1), {Source.QUOTES: 1000.0}, START, 1)
    batch = quotes.batch(2000)
    assert [e["sequence"] for e in batch] == list(range(2000))
    assert batch[0]["event_time"] == START
    assert batch[-1]["event_time"] == START + 1999 * 1000
    assert len({e["event_id"] for e in batch}) == 2000


def test_vectorised_walk_equals_stepping_one_event_at_a_time() -> None:
    rng = np.random.default_rng(4)
    who = rng.integers(0, 7, size=500)
    steps = rng.integers(-2, 3, size=500)
    levels = np.full(7, 10_000, dtype=np.int64)  # far from the floor: a plain random walk
    got = walk(levels, who, steps)
    state, expected = [10_000] * 7, []
    for i, step in zip(who.tolist(), steps.tolist(), strict=True):
        state[i] += step
        expected.append(state[i])
    assert got.tolist() == expected
    assert levels.tolist() == state  # the walk continues from here in the next batch


def test_walk_never_goes_below_one_tick() -> None:
    levels = np.full(3, 2, dtype=np.int64)
    got = walk(levels, np.zeros(50, dtype=np.int64), np.full(50, -2))
    assert got.min() == 1 and levels[0] == 1


def test_rates_split_by_default_share_and_respect_explicit_ones() -> None:
    assert split_rate(100_000, {}) == {Source.QUOTES: 70_000, Source.PRICES: 10_000, Source.TRADES: 20_000}
    rates = split_rate(100_000, {Source.TRADES: 50_000.0, Source.PRICES: 0.0})
    assert rates == {Source.TRADES: 50_000.0, Source.QUOTES: 50_000.0}


@pytest.mark.parametrize(("price", "tick"), [(0.5, 0.0001), (5.0, 0.001), (50.0, 0.01), (500.0, 0.05), (5000.0, 0.5)])
def test_tick_table(price: float, tick: float) -> None:
    assert tick_size_for(price) == tick


def test_two_runs_of_one_seed_have_different_event_ids_and_one_start_repeats_them() -> None:
    universe = build_universe(10, 1)
    first, again, later = (
        generators(universe, {Source.TRADES: 1000.0}, start, 1)[0].batch(100) for start in (START, START, START + 5_000)
    )
    assert first == again, "same seed and start: the same events"
    assert not {e["event_id"] for e in first} & {e["event_id"] for e in later}, "a fill would drop them as duplicates"
