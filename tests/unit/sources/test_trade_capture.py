"""The trade booker: the simulators' trades as rows, and corrections and cancels of recent ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tickflow.errors import TickflowError
from tickflow.sources.simulator import Source, generators
from tickflow.sources.trade_capture import Booker, BookingConfig, SlotState
from tickflow.sources.universe import build_universe

START = 1_795_793_405_000_000


def booker(**config: float) -> Booker:
    universe = build_universe(50, 7)
    (generator,) = generators(universe, {Source.TRADES: 1000.0}, START, 7)
    return Booker(generator, BookingConfig(rate=1000.0, **config))  # type: ignore[arg-type]


def test_rows_are_the_simulators_trades_with_ids_unique_to_the_run() -> None:
    universe = build_universe(50, 7)
    (twin,) = generators(universe, {Source.TRADES: 1000.0}, START, 7)
    expected = twin.batch(200)
    b = booker()
    text, booked = b.copy_text(b.generator.batch(200))
    rows = [line.split("\t") for line in text.splitlines()]
    assert len(rows) == len(booked) == 200
    for row, event, trade in zip(rows, expected, booked, strict=True):
        trade_id, instrument_id, booked_at, price, size, side = row
        mic, sequence = event["trade_id"].rsplit("-", 1)
        assert trade_id == trade.trade_id == f"{mic}-{START // 1000}-{sequence}"
        assert instrument_id == event["instrument_id"] and side == event["trade_side"]
        assert float(price) == event["trade_price"] and int(size) == event["trade_size"]
        assert datetime.fromisoformat(booked_at) == datetime.fromtimestamp(event["event_time"] / 1e6, UTC)
        assert b.generator.ids[trade.who] == instrument_id


def test_corrections_move_recent_trades_by_a_tick_and_a_lot_and_cancels_are_not_corrected() -> None:
    b = booker(corrections=0.1, cancels=0.05)
    _, booked = b.copy_text(b.generator.batch(2000))
    before = {t.trade_id: (t.price, t.size) for t in booked}
    b.remember(booked)
    cancelled = b.cancels(2000)
    corrected = b.corrections(2000)
    assert 50 <= len(cancelled) <= 150 and 100 <= len(corrected) <= 300
    assert not {t.trade_id for t in cancelled} & {t.trade_id for t in corrected}
    assert len({t.trade_id for t in corrected}) == len(corrected), "a trade is corrected once per transaction"
    for trade in corrected:
        tick, lot = float(b.generator.market.ticks[trade.who]), int(b.generator.lots[trade.who])
        price, size = before[trade.trade_id]
        assert trade.price in {round(max(tick, price + step), 6) for step in (-tick, tick)}
        assert trade.size in (max(lot, size - lot), size + lot)
    again = {t.trade_id for t in b.cancels(2000)}
    assert again and not again & {t.trade_id for t in cancelled}, "a cancelled trade is not cancelled again"


def test_nothing_is_picked_when_the_fractions_are_zero() -> None:
    b = booker()
    _, booked = b.copy_text(b.generator.batch(100))
    b.remember(booked)
    assert b.cancels(100) == [] and b.corrections(100) == []


@pytest.mark.parametrize(("knob", "value"), [("rate", 0.0), ("corrections", 1.5), ("cancels", -0.1)])
def test_bad_knobs_are_refused_in_one_sentence(knob: str, value: float) -> None:
    with pytest.raises(TickflowError, match=f"--{knob}"):
        BookingConfig(**{knob: value})  # type: ignore[arg-type]


def test_the_slot_is_healthy_only_while_read_and_not_lost() -> None:
    assert SlotState(True, True, 2_097_152, "reserved").healthy
    assert SlotState(True, True, 2_097_152, "reserved").line() == (
        "slot tickflow_trades: streaming to the connector; 2.0 MB of WAL behind; WAL reserved"
    )
    assert not SlotState(True, False, 0, "reserved").healthy
    assert "no reader" in SlotState(True, False, 0, "reserved").line()
    assert not SlotState(True, True, None, "lost").healthy
    assert not SlotState(False).healthy and "trades prepare" in SlotState(False).line()
