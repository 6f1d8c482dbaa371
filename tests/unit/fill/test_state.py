"""The fill state's files: exact under replay, layers merge by the fill's own rule (the fill tasks prune old
files: jvm/stream's StateFilesTest); and the per-partition fill task run without Spark (Arrow in, Arrow out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tickflow.fill.semantics import InstrumentState
from tickflow.fill.state import FillState, from_table, merge, to_table
from tickflow.runtime.location import Location

T0 = 1_795_793_405_000_000


def state(**registers: tuple[Any, int, int]) -> InstrumentState:
    result = InstrumentState()
    for name, (value, as_of, offset) in registers.items():
        result.values[name], result.as_of[name], result.offsets[name] = value, as_of, offset
    return result


def test_merge_takes_per_field_the_newer_register_and_commutes() -> None:
    a = state(bid_price=(10.0, T0 + 5, 1), trade_id=("t1", T0, 2))
    b = state(bid_price=(11.0, T0 + 5, 3), ask_price=(12.0, T0, 4))
    merged = merge(a, b)
    assert merged.get("bid_price") == (11.0, T0 + 5, 3)  # same time: the later offset wins
    assert merged.get("trade_id") == ("t1", T0, 2) and merged.get("ask_price") == (12.0, T0, 4)
    assert merge(b, a) == merged and merge(merged, merged) == merged


def test_registers_survive_a_round_trip_through_parquet_types() -> None:
    states = {"XNAS:AAPL": state(bid_size=(5, T0, 1), trade_side=("buy", T0 + 1, 2)), "XNAS:MSFT": InstrumentState()}
    assert from_table(to_table(states)) == states


def test_a_replayed_batch_reads_what_its_first_attempt_read(tmp_path: Path) -> None:
    files = FillState(Location.of(tmp_path))
    files.write(3, 7, {"A": state(last_price=(1.0, T0, 10))})
    files.write(3, 8, {"A": state(last_price=(2.0, T0 + 1, 11))})  # batch 8 ran, its commit did not
    assert files.prior(3, 8, ["A"])["A"].get("last_price") == (1.0, T0, 10)
    assert files.prior(3, 9, ["A"])["A"].get("last_price") == (2.0, T0 + 1, 11)
    assert files.prior(4, 9, ["A"]) == {}  # another partition has its own instruments
    files.write(4, 8, {"B": state(last_price=(3.0, T0, 1)), "C": InstrumentState()})
    assert files.instrument_count() == 3  # the newest file of each partition: A on 3, B and C on 4


def test_the_initial_layer_seeds_instruments_and_loses_to_newer_registers(tmp_path: Path) -> None:
    files = FillState(Location.of(tmp_path))
    files.seed({"A": state(last_price=(1.0, T0, 10), close_price=(9.0, T0, 3)), "B": state(last_price=(5.0, T0, 1))})
    files.write(0, 0, {"A": state(last_price=(2.0, T0 + 1, 11))})
    prior = files.prior(0, 1, ["A"])
    assert prior["A"].get("last_price") == (2.0, T0 + 1, 11) and prior["A"].get("close_price") == (9.0, T0, 3)
    current = files.current()
    assert set(current) == {"A", "B"} and files.instrument_count() == 2
    assert files.current(up_to_batch=-1)["A"].get("last_price") == (1.0, T0, 10)


def test_a_cleared_register_and_a_file_from_before_a_field_was_added_read_back(tmp_path: Path) -> None:
    cleared = {"A": state(trade_price=(None, T0 + 9, 4), cancelled_trade_id=("t1", T0 + 9, 4), bid_price=(1.0, T0, 1))}
    assert from_table(to_table(cleared)) == cleared  # a cancel's null with its as-of is a register, not "never set"
    files = FillState(Location.of(tmp_path))
    names = [n for n in to_table(cleared).column_names if not n.startswith("cancelled_trade_id")]
    older = to_table(cleared).select(names)  # MarketEvent v1's state: no cancelled_trade_id columns
    (tmp_path / "p0").mkdir()
    pq.write_table(older, tmp_path / "p0" / "5.parquet")
    assert files.prior(0, 6, ["A"])["A"] == state(trade_price=(None, T0 + 9, 4), bid_price=(1.0, T0, 1))
