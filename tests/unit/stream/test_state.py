"""The fill state's files: exact under replay, layers merge by the fill's own rule, old files pruned;
and the per-partition fill task run without Spark (Arrow in, Arrow out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tickflow.stream.fill import FILL_FIELDS, InstrumentState, fill_columns
from tickflow.stream.fill_task import FillTask
from tickflow.stream.state import FillState, from_table, merge, to_table

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
    files = FillState(tmp_path)
    files.write(3, 7, {"A": state(last_price=(1.0, T0, 10))})
    files.write(3, 8, {"A": state(last_price=(2.0, T0 + 1, 11))})  # batch 8 ran, its commit did not
    assert files.prior(3, 8, ["A"])["A"].get("last_price") == (1.0, T0, 10)
    assert files.prior(3, 9, ["A"])["A"].get("last_price") == (2.0, T0 + 1, 11)
    assert files.prior(4, 9, ["A"]) == {}  # another partition has its own instruments


def test_the_initial_layer_seeds_instruments_and_loses_to_newer_registers(tmp_path: Path) -> None:
    files = FillState(tmp_path)
    files.seed({"A": state(last_price=(1.0, T0, 10), close_price=(9.0, T0, 3)), "B": state(last_price=(5.0, T0, 1))})
    files.write(0, 0, {"A": state(last_price=(2.0, T0 + 1, 11))})
    prior = files.prior(0, 1, ["A"])
    assert prior["A"].get("last_price") == (2.0, T0 + 1, 11) and prior["A"].get("close_price") == (9.0, T0, 3)
    current = files.current()
    assert set(current) == {"A", "B"} and files.instrument_count() == 2
    assert files.current(up_to_batch=-1)["A"].get("last_price") == (1.0, T0, 10)


def test_prune_keeps_the_newest_files_of_every_partition(tmp_path: Path) -> None:
    files = FillState(tmp_path)
    for batch_id in range(6):
        files.write(0, batch_id, {"A": state(last_price=(float(batch_id), T0 + batch_id, batch_id))})
    files.write(1, 2, {"B": state(last_price=(1.0, T0, 1))})
    files.prune(keep=2)
    assert sorted(p.name for p in (tmp_path / "p0").iterdir()) == ["4.parquet", "5.parquet"]
    assert [p.name for p in (tmp_path / "p1").iterdir()] == ["2.parquet"]


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int) -> None:
        self.value += n


def events_batch(events: list[dict[str, Any]], partition: int) -> pa.RecordBatch:
    """What decode.decoded_events hands the task: valid events, so no reason, key or bytes."""
    rows = [{"partition": partition, "ingest_time": T0, "reason": None, "kafka_key": None, "value": None,
             "event_key": hash(e["event_id"]), **e} for e in events]  # fmt: skip
    columns = {name: [r.get(name) for r in rows] for name in [*rows[0], *FILL_FIELDS] if name != "event_id"}
    types = {"reason": pa.string(), "kafka_key": pa.binary(), "value": pa.binary()}
    return pa.RecordBatch.from_pydict({n: pa.array(v, types.get(n)) for n, v in columns.items()})


@pytest.mark.parametrize("batches", [1, 2])
def test_the_fill_task_fills_a_partition_across_batches_like_the_contract(tmp_path: Path, batches: int) -> None:
    """Two micro-batches through the task (state in files between them) == the per-event contract."""
    events = [
        {"event_id": "1", "instrument_id": "A", "event_time": T0 + 1, "offset": 0, "bid_price": 10.0, "bid_size": 5},
        {"event_id": "2", "instrument_id": "B", "event_time": T0 + 1, "offset": 1, "last_price": 3.0},
        {"event_id": "3", "instrument_id": "A", "event_time": T0 + 3, "offset": 2, "ask_price": 11.0},
        {"event_id": "4", "instrument_id": "A", "event_time": T0 + 2, "offset": 3, "bid_price": 9.5},  # late
        {
            "event_id": "5",
            "instrument_id": "A",
            "event_time": T0 + 4,
            "offset": 4,
            "trade_id": "x",
            "trade_side": "buy",
        },
    ]
    counters = (Counter(), Counter())
    task = FillTask({"bootstrap.servers": "unused:9092"}, "md.events", "md.dlq", FillState(tmp_path), 0, counters)
    split = 3 if batches == 2 else len(events)
    outputs = list(task(iter([events_batch(events[:split], 7)])))
    if batches == 2:
        second = FillTask(**{**task.__dict__, "batch_id": 1})
        outputs += list(second(iter([events_batch(events[split:], 7)])))
    rows = pa.Table.from_batches(outputs).to_pylist()
    last = {r["instrument_id"]: r for r in rows}
    expected_state, expected = fill_columns(
        None, [{**e, "ingest_time": T0} for e in events if e["instrument_id"] == "A"]
    )
    assert {f: last["A"][f] for f in FILL_FIELDS} == {f: expected[f][-1] for f in FILL_FIELDS}
    assert last["B"]["last_price"] == 3.0
    assert FillState(tmp_path).current()["A"] == expected_state
    assert counters[0].value == len(rows) and counters[1].value == 0


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, dict[str, bytes]]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: Any, on_delivery: Any) -> None:
        self.sent.append((topic, key, value, dict(headers)))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def test_rejected_records_reach_the_dlq_with_their_own_key_and_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that is not UTF-8 crosses the Arrow to pandas conversion as bytes; empty and missing keys stay apart."""
    producer = Producer()
    monkeypatch.setattr("tickflow.stream.fill_task._producer", lambda servers: producer)
    keys = [b"\xffXNAS:AAPL", b"", None]
    rejected = pa.RecordBatch.from_pydict(
        {
            "partition": [7, 7, 7],
            "offset": [0, 1, 2],
            "reason": ["message key is not the instrument_id"] * 3,
            "kafka_key": pa.array(keys, pa.binary()),
            "value": [b"\x00bad", b"", b"x"],
        }
    )
    counters = (Counter(), Counter())
    task = FillTask({"bootstrap.servers": "unused:9092"}, "md.events", "md.dlq", FillState(tmp_path), 0, counters)
    assert list(task(iter([rejected]))) == []
    assert [(topic, key, value) for topic, key, value, _ in producer.sent] == [
        ("md.dlq", b"\xffXNAS:AAPL", b"\x00bad"),
        ("md.dlq", b"", b""),
        ("md.dlq", None, b"x"),
    ]
    assert producer.sent[2][3]["source.offset"] == b"2" and counters[1].value == 3
