"""The forward-fill state, durable per input partition and micro-batch (docs/architecture.md).

An instrument's events all arrive on one Kafka partition (key = instrument id), so the task
that fills a partition's events owns its instruments' registers. It keeps them in small
Parquet files inside the query's checkpoint:

    <checkpoint>/fill-state/
      initial.parquet            registers a new checkpoint starts from (a restored snapshot), optional
      p<partition>/<batch>.parquet   every instrument seen on that partition, after micro-batch <batch>

The task of batch N reads the newest file of its partition older than N and writes N. A
replayed batch (after a crash, Spark re-runs the batch from its offset log) therefore reads
exactly what its first attempt read, and rewrites the same file: the state is exact under
replay and survives kill -9, with no driver memory involved. Layers merge by the fill's own
rule, per field the greater (as-of time, offset), so the order they are read in never matters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tickflow.fill.semantics import FILL_FIELDS, FILL_TYPES, NEVER, InstrumentState
from tickflow.runtime.location import Location

ARROW_TYPES = {"double": pa.float64(), "long": pa.int64(), "string": pa.string(), "enum": pa.string()}
VALUE_TYPES = {name: ARROW_TYPES[kind] for name, kind in FILL_TYPES.items()}
STATE_SCHEMA = pa.schema(
    [pa.field("instrument_id", pa.string())]
    + [pa.field(name, VALUE_TYPES[name]) for name in FILL_FIELDS]
    + [pa.field(f"{name}_as_of", pa.int64()) for name in FILL_FIELDS]
    + [pa.field(f"{name}_offset", pa.int64()) for name in FILL_FIELDS]
)
BATCH_FILE = re.compile(r"^(-?\d+)\.parquet$")


def merge(a: InstrumentState | None, b: InstrumentState | None) -> InstrumentState:
    """Per field the register with the greater (as-of, offset): the fill's rule, so merging commutes."""
    if a is None or b is None:
        return (a or b) or InstrumentState()
    merged = InstrumentState()
    for name in FILL_FIELDS:
        best = max((s for s in (a, b) if name in s.as_of), key=lambda s: (s.as_of[name], s.offsets[name]), default=None)
        if best is not None:
            merged.values[name], merged.as_of[name], merged.offsets[name] = best.get(name)
    return merged


def to_table(states: Mapping[str, InstrumentState]) -> pa.Table:
    """Registers -> one row per instrument in STATE_SCHEMA (nulls where a field was never set)."""
    ids = sorted(states)
    columns: dict[str, list[Any]] = {"instrument_id": ids}
    for name in FILL_FIELDS:
        registers = [states[i].get(name) for i in ids]
        columns[name] = [r[0] if r[1] != NEVER else None for r in registers]
        columns[f"{name}_as_of"] = [r[1] if r[1] != NEVER else None for r in registers]
        columns[f"{name}_offset"] = [r[2] if r[1] != NEVER else None for r in registers]
    return pa.table(columns, schema=STATE_SCHEMA)


def from_table(table: pa.Table) -> dict[str, InstrumentState]:
    """Rows of STATE_SCHEMA -> registers by instrument. A field without columns (a file written before the field
    was added to MarketEvent, e.g. v1's state under v2's code) was never set."""
    data = table.to_pydict()
    states: dict[str, InstrumentState] = {}
    fields = [name for name in FILL_FIELDS if f"{name}_as_of" in data]
    for row, instrument_id in enumerate(data["instrument_id"]):
        state = InstrumentState()
        for name in fields:
            as_of = data[f"{name}_as_of"][row]
            if as_of is not None:
                state.values[name] = data[name][row]
                state.as_of[name] = int(as_of)
                state.offsets[name] = int(data[f"{name}_offset"][row])
        states[instrument_id] = state
    return states


def _write(table: pa.Table, location: Location) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    location.write_bytes(sink.getvalue().to_pybytes())


def _read_table(location: Location, **options: Any) -> pa.Table:
    return pq.read_table(location.path, filesystem=location.fs, **options)


class FillState:
    """The state files of one query (see the module docstring for the layout), on the local disk or HDFS."""

    def __init__(self, directory: Location) -> None:
        self.directory = directory

    @property
    def initial_path(self) -> Location:
        return self.directory / "initial.parquet"

    def _batches(self, partition: int) -> list[int]:
        found = (BATCH_FILE.match(name) for name in (self.directory / f"p{partition}").names())
        return sorted(int(m.group(1)) for m in found if m)

    def _partitions(self) -> list[int]:
        return sorted(int(name[1:]) for name in self.directory.names() if re.fullmatch(r"p\d+", name))

    def _read(self, location: Location) -> dict[str, InstrumentState]:
        return from_table(_read_table(location, schema=STATE_SCHEMA)) if location.exists() else {}

    def prior(self, partition: int, batch_id: int, instruments: Iterable[str]) -> dict[str, InstrumentState]:
        """The partition's registers before ``batch_id`` (every instrument the partition has seen), with
        the initial layer merged in for ``instruments``."""
        older = [b for b in self._batches(partition) if b < batch_id]
        states = self._read(self.directory / f"p{partition}" / f"{older[-1]}.parquet") if older else {}
        initial = self._read(self.initial_path)
        for instrument_id in instruments:
            if instrument_id in initial:
                states[instrument_id] = merge(states.get(instrument_id), initial[instrument_id])
        return states

    def write(self, partition: int, batch_id: int, states: Mapping[str, InstrumentState]) -> None:
        _write(to_table(states), self.directory / f"p{partition}" / f"{batch_id}.parquet")

    def seed(self, states: Mapping[str, InstrumentState]) -> None:
        """The registers a new checkpoint starts from (refused once batches have run on it)."""
        _write(to_table(states), self.initial_path)

    def instrument_count(self) -> int:
        """How many instruments have registers (the newest file of every partition, and the initial layer).

        Without an initial layer, the sum of the newest files' row counts, read from their footers: a partition's
        file holds every instrument seen on it, and an instrument is on one partition only. Reading their ids
        instead, every micro-batch, was the stream's Python driver's largest cost (docs/performance.md)."""
        newest = []
        for partition in self._partitions():
            batches = self._batches(partition)
            if batches:
                newest.append(self.directory / f"p{partition}" / f"{batches[-1]}.parquet")
        if not self.initial_path.exists():
            return sum(pq.ParquetFile(file.path, filesystem=file.fs).metadata.num_rows for file in newest)
        ids: set[str] = set()
        for file in (*newest, self.initial_path):
            ids.update(_read_table(file, columns=["instrument_id"]).column(0).to_pylist())
        return len(ids)

    def current(self, up_to_batch: int | None = None) -> dict[str, InstrumentState]:
        """Every instrument's registers after ``up_to_batch`` (default: the newest files).

        Raises FileNotFoundError when a running query pruned a file between listing and reading it."""
        states = self._read(self.initial_path)
        for partition in self._partitions():
            batches = [b for b in self._batches(partition) if up_to_batch is None or b <= up_to_batch]
            if batches:
                file = self.directory / f"p{partition}" / f"{batches[-1]}.parquet"
                for instrument_id, state in from_table(_read_table(file, schema=STATE_SCHEMA)).items():
                    states[instrument_id] = merge(states.get(instrument_id), state)
        return states
