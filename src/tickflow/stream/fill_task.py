"""The fill stage: one Spark task per input partition fills its events in Python, no shuffle.

All events of an instrument arrive on one Kafka partition (key = instrument id), and Spark reads
each Kafka partition of a micro-batch as one task. So the task that holds a partition's events
holds everything its instruments need: ``mapInArrow`` hands it the JVM-decoded events as Arrow,
and it

  1. decodes what the JVM could not (not the wire format, a schema id registered after the batch
     was planned, bad or left-over bytes) with fastavro, so every rejection gets a precise reason;
  2. validates (``decode.reject_reasons``) and sends the rejected messages to the dead-letter topic
     itself: original bytes, reason and source coordinates in headers;
  3. fills the valid events with the partition's registers (``fill.fill_frame``) read from and
     written back to ``state.FillState`` under the batch id, so a replay reads what it read before;
  4. returns one filled row per (instrument, event time) as Arrow for the enrichment SQL.

Where the previous design grouped events by instrument bucket (a shuffle) and called Spark's
state server per instrument, this costs one pass over the events; see docs/performance.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tickflow.avro_codec import to_micros
from tickflow.stream.decode import Decoder, Limits, Rejected, registry_fetcher, reject_reasons
from tickflow.stream.fill import FILL_FIELDS, NEVER, fill_frame
from tickflow.stream.state import VALUE_TYPES, FillState

TIMESTAMP = pa.timestamp("us", tz="UTC")
FILLED_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.string()),
        pa.field("event_time", TIMESTAMP),
        pa.field("event_count", pa.int32()),
        pa.field("ingest_time", TIMESTAMP),
        *(pa.field(name, VALUE_TYPES[name]) for name in FILL_FIELDS),
        *(pa.field(f"{name}_as_of", TIMESTAMP) for name in FILL_FIELDS),
    ]
)
DLQ_COLUMNS = ("kafka_key", "value", "topic", "partition", "offset")
EVENT_COLUMNS = (*DLQ_COLUMNS, "ingest_time")

_producers: dict[str, Any] = {}


def _producer(bootstrap_servers: str) -> Any:
    """One dead-letter producer per Python worker process (workers are reused across tasks)."""
    if bootstrap_servers not in _producers:
        from confluent_kafka import Producer

        _producers[bootstrap_servers] = Producer(
            {"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 5}
        )
    return _producers[bootstrap_servers]


def spark_schema() -> Any:
    """FILLED_SCHEMA as a Spark StructType (for mapInArrow and the enrichment SQL check)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(FILLED_SCHEMA)


def to_arrow(columns: dict[str, np.ndarray]) -> pa.RecordBatch:
    """Filled columns (µs integers for times, NEVER for never set) -> a batch of FILLED_SCHEMA."""
    arrays = []
    for field in FILLED_SCHEMA:
        values = columns[field.name]
        if field.type == TIMESTAMP:
            micros = np.asarray(values, dtype=np.int64)
            arrays.append(pa.array(micros, pa.int64(), mask=micros == NEVER).cast(TIMESTAMP))
        else:  # from_pandas: NaN is null (pandas hands nullable longs over as floats)
            arrays.append(pa.array(values, field.type, from_pandas=True))
    return pa.RecordBatch.from_arrays(arrays, schema=FILLED_SCHEMA)


@dataclass(frozen=True)
class FillTask:
    """The function ``mapInArrow`` runs for micro-batch ``batch_id``; built on the driver, pickled to workers.

    ``counters`` are Spark accumulators (filled rows, dead letters) the driver reports."""

    reader_schema: dict[str, Any]
    registry_url: str
    bootstrap_servers: str
    dlq_topic: str
    limits: Limits
    state: FillState
    batch_id: int
    counters: tuple[Any, Any]

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        received = list(batches)
        if not received or not sum(b.num_rows for b in received):
            return
        events = pa.Table.from_batches(received).to_pandas()
        partitions = events["partition"].unique()
        parts = [(partitions[0], events)] if len(partitions) == 1 else events.groupby("partition", sort=False)
        for partition, part in parts:  # one Kafka partition per task, unless Spark split or merged ranges
            filled = self.fill_partition(int(partition), part)
            if filled is not None:
                yield filled

    def fill_partition(self, partition: int, raw: pd.DataFrame) -> pa.RecordBatch | None:
        events, rejected = self._decode(raw)
        reasons = reject_reasons(events, time.time_ns() // 1000, self.limits)
        invalid = reasons != None  # noqa: E711 - elementwise on an object array
        if invalid.any():
            rejected.append(events[invalid][list(DLQ_COLUMNS)].assign(reason=reasons[invalid]))
        if rejected:
            self._dead_letters(pd.concat(rejected, ignore_index=True))
        valid = events[~invalid]
        if valid.empty:
            return None
        instruments = valid["instrument_id"].unique()
        prior = self.state.prior(partition, self.batch_id, instruments)
        states, columns = fill_frame(prior, valid)
        self.state.write(partition, self.batch_id, {**prior, **states})
        self.counters[0].add(len(columns["event_time"]))
        return to_arrow(columns)

    def _decode(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
        """Events (JVM-decoded, plus those fastavro decodes here) and the rejected rows with reasons."""
        decoded = raw["decoded"].to_numpy(dtype=bool)
        if decoded.all():
            return raw, []
        decoder = Decoder(self.reader_schema, registry_fetcher(self.registry_url))
        recovered, rejected = [], []
        for row in raw[~decoded].itertuples(index=False):
            try:
                record = decoder.decode(row.value)
            except Rejected as reason:
                rejected.append((row.kafka_key, row.value, row.topic, row.partition, row.offset, str(reason)))
                continue
            record["event_time"] = to_micros(record["event_time"])
            recovered.append({**record, **{c: getattr(row, c) for c in EVENT_COLUMNS}})
        frames = [raw[decoded]]
        if recovered:
            frames.append(pd.DataFrame(recovered))
        rejected_frame = pd.DataFrame(rejected, columns=[*DLQ_COLUMNS, "reason"])
        return pd.concat(frames, ignore_index=True), [rejected_frame] if rejected else []

    def _dead_letters(self, rejected: pd.DataFrame) -> None:
        """Original bytes to the DLQ with the reason and source coordinates in headers; delivered before
        the task ends, so a committed batch never lost one (a replay may send one twice)."""
        producer = _producer(self.bootstrap_servers)
        failures: list[str] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        for row in rejected.itertuples(index=False):
            headers = [
                ("reason", row.reason.encode()),
                ("source.topic", str(row.topic).encode()),
                ("source.partition", str(row.partition).encode()),
                ("source.offset", str(row.offset).encode()),
            ]
            key = row.kafka_key.encode() if row.kafka_key else None
            producer.produce(self.dlq_topic, row.value, key, headers=headers, on_delivery=delivered)
            producer.poll(0)
        remaining = producer.flush(60)
        if remaining or failures:
            raise RuntimeError(
                f"{remaining or len(failures)} dead letters not delivered to {self.dlq_topic}: {failures[:1]}"
            )
        self.counters[1].add(len(rejected))
