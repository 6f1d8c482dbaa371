"""Three market-data source systems: quote updates, a pricing engine and trade reports.

Each source is a deterministic generator: the same seed, universe, rate and start time
give the same events, byte for byte. A source's clock advances by 1/rate per event, so
at the target rate event times follow the wall clock. Prices walk on each instrument's
tick grid (an integer number of ticks), quotes keep bid < ask, and each source fills
only its own fields of ``MarketEvent``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from tickflow.sources.universe import Instrument


class Source(StrEnum):
    QUOTES = "quotes"
    PRICES = "prices"
    TRADES = "trades"


SOURCE_CODES = {Source.QUOTES: "Q", Source.PRICES: "P", Source.TRADES: "T"}
# How a default total rate splits over the sources (quote updates dominate real feeds).
DEFAULT_SHARE = {Source.QUOTES: 0.7, Source.PRICES: 0.1, Source.TRADES: 0.2}

Event = dict[str, Any]


@dataclass
class MarketState:
    """The instruments every source observes: tick grid, starting level (in ticks), activity."""

    universe: Sequence[Instrument]
    seed: int
    ticks: np.ndarray = field(init=False)
    levels: np.ndarray = field(init=False)
    weights: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.ticks = np.array([i.tick_size for i in self.universe])
        self.levels = np.array([max(10, round(i.initial_price / i.tick_size)) for i in self.universe], dtype=np.int64)
        # Activity is skewed, as on real venues: a few names take most of the updates.
        rank = np.arange(1, len(self.universe) + 1, dtype=float)
        weights = 1.0 / rank**0.8
        np.random.default_rng(self.seed).shuffle(weights)
        self.weights = weights / weights.sum()

    def prices(self, who: np.ndarray, levels: np.ndarray) -> list[float]:
        """Prices on the tick grid. Rounding to 1e-6 gives the same double as rounding to the
        tick's own decimals, since every tick is a multiple of 1e-4."""
        return list(np.round(levels * self.ticks[who], 6).tolist())


def walk(levels: np.ndarray, who: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Apply a batch of steps in order and return each event's level; updates ``levels``.

    Vectorised: the level after event k of instrument i is its level before the batch
    plus the cumulative sum of i's steps up to k (floored at one tick).
    """
    order = np.argsort(who, kind="stable")
    grouped_who, grouped_steps = who[order], steps[order]
    running = np.cumsum(grouped_steps)
    starts = np.flatnonzero(np.r_[True, grouped_who[1:] != grouped_who[:-1]])
    sizes = np.diff(np.r_[starts, len(who)])
    before_group = np.repeat(running[starts] - grouped_steps[starts], sizes)
    grouped_levels = np.maximum(levels[grouped_who] + running - before_group, 1)
    result: np.ndarray = np.empty_like(grouped_levels)
    result[order] = grouped_levels
    ends = starts + sizes - 1
    levels[grouped_who[ends]] = grouped_levels[ends]
    return result


class SourceGenerator:
    """Events of one source system, in emission order."""

    def __init__(self, source: Source, market: MarketState, rate: float, start_us: int, seed: int) -> None:
        if rate <= 0:
            raise ValueError(f"{source} rate must be positive, got {rate}")
        self.source = source
        self.market = market
        self.rate = rate
        self.start_us = start_us
        self.sequence = 0
        self.rng = np.random.default_rng([seed, list(Source).index(source)])
        # The start (ms) makes ids unique across runs: two runs of one seed are different events, and the
        # fill drops a repeated event_id as a duplicate wherever both copies meet (a catch-up micro-batch,
        # a backfill chunk). The same seed and start still give the same events.
        self.id_prefix = f"{SOURCE_CODES[source]}{seed}-{start_us // 1000}-"
        # Each source sees the market through its own view (they do not share a process).
        self.levels = market.levels.copy()
        self.closes = market.prices(np.arange(len(market.universe)), market.levels)
        self.ids = [i.instrument_id for i in market.universe]
        self.lots = np.array([i.lot_size for i in market.universe], dtype=np.int64)
        self.exchanges = [i.exchange for i in market.universe]

    def batch(self, count: int) -> list[Event]:
        """The next ``count`` events of this source."""
        rng, market = self.rng, self.market
        who = rng.choice(len(self.ids), size=count, p=market.weights)
        levels = walk(self.levels, who, rng.integers(-2, 3, size=count))
        first = self.sequence
        self.sequence += count
        sequences = range(first, first + count)
        times = (self.start_us + (np.arange(first, first + count) * 1_000_000) // self.rate).astype(np.int64)
        ids, source = self.ids, self.source.value
        prefix = self.id_prefix
        columns: dict[str, list[Any]] = {}
        if self.source is Source.QUOTES:
            bid_levels = np.maximum(levels - rng.integers(0, 3, size=count), 1)
            columns["bid_price"] = market.prices(who, bid_levels)
            columns["ask_price"] = market.prices(who, bid_levels + rng.integers(1, 3, size=count))
            columns["bid_size"] = (rng.integers(1, 50, size=count) * self.lots[who]).tolist()
            columns["ask_size"] = (rng.integers(1, 50, size=count) * self.lots[who]).tolist()
        elif self.source is Source.PRICES:
            columns["last_price"] = market.prices(who, levels)
            columns["close_price"] = [self.closes[i] for i in who.tolist()]
            columns["reference_price"] = market.prices(who, levels + rng.integers(-1, 2, size=count))
        else:
            exchanges = self.exchanges
            columns["trade_id"] = [f"{exchanges[i]}-{seq}" for i, seq in zip(who.tolist(), sequences, strict=True)]
            columns["trade_price"] = market.prices(who, levels)
            columns["trade_size"] = (rng.integers(1, 50, size=count) * self.lots[who]).tolist()
            columns["trade_side"] = np.where(rng.random(size=count) < 0.5, "buy", "sell").tolist()
        names = list(columns)
        rows = zip(*columns.values(), strict=True)
        return [
            {
                "event_id": f"{prefix}{seq}",
                "instrument_id": ids[i],
                "source": source,
                "event_time": t,
                "sequence": seq,
                **dict(zip(names, row, strict=True)),
            }
            for i, seq, t, row in zip(who.tolist(), sequences, times.tolist(), rows, strict=True)
        ]


def split_rate(total: float, overrides: dict[Source, float | None]) -> dict[Source, float]:
    """Per-source rates: explicit ones as given, the rest share what is left by DEFAULT_SHARE."""
    fixed = {s: r for s, r in overrides.items() if r is not None}
    rest = [s for s in Source if s not in fixed]
    left = max(0.0, total - sum(fixed.values()))
    share = sum(DEFAULT_SHARE[s] for s in rest) or 1.0
    rates = {**fixed, **{s: left * DEFAULT_SHARE[s] / share for s in rest}}
    return {s: r for s, r in rates.items() if r > 0}


def generators(
    universe: Sequence[Instrument], rates: dict[Source, float], start_us: int, seed: int
) -> list[SourceGenerator]:
    market = MarketState(universe, seed)
    return [SourceGenerator(source, market, rate, start_us, seed) for source, rate in rates.items()]


def interleave(sources: Sequence[SourceGenerator], slice_s: float = 0.01) -> Iterator[list[tuple[Source, list[Event]]]]:
    """Endless slices: every source's events for the next ``slice_s`` of its clock."""
    carry = dict.fromkeys(range(len(sources)), 0.0)
    while True:
        out = []
        for index, source in enumerate(sources):
            due = source.rate * slice_s + carry[index]
            count = int(due)
            carry[index] = due - count
            if count:
                out.append((source.source, source.batch(count)))
        yield out
