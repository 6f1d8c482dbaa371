"""The stream's fill stage as it was in Python (``mapInArrow``), kept as a contender of the benches: the JVM
operator (tickflow.stream.fill_step) replaced it. One Spark task per input partition fills its events, no shuffle.

All events of an instrument arrive on one Kafka partition (key = instrument id), and Spark reads
each Kafka partition of a micro-batch as one task. So the task that holds a partition's events
holds everything its instruments need: ``mapInArrow`` hands it the partition's decoded and
validated events (``decode.decoded_events``, in the JVM) as Arrow, and it

  1. sends the rejected records to the dead-letter topic: original bytes, the reason and the
     source coordinates in headers, delivered before the task ends;
  2. fills the valid events with the partition's registers (``fill.fill_frame``, whole columns),
     read from and written back to ``state.FillState`` under the batch id, so a replayed batch
     reads what its first attempt read;
  3. returns one filled row per (instrument, event time) as Arrow for the enrichment SQL.

The design before this one grouped events by a bucket of instruments (a shuffle) and called
Spark's state server per instrument; see docs/performance.md for the measurements.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tickflow.fill.semantics import NEVER, fill_frame
from tickflow.fill.state import FillState
from tickflow.stream.fill_step import FILLED_SCHEMA, TIMESTAMP

_producers: dict[frozenset[tuple[str, str]], Any] = {}


def _producer(kafka_config: dict[str, str]) -> Any:
    """One dead-letter producer per Python worker process and client config (workers are reused across tasks)."""
    key = frozenset(kafka_config.items())
    if key not in _producers:
        from confluent_kafka import Producer

        _producers[key] = Producer({**kafka_config, "enable.idempotence": True, "linger.ms": 5})
    return _producers[key]


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

    ``kafka_config`` is where and as whom the dead-letter producer connects (``kafka_auth.kafka_client_config``).
    ``counters`` are Spark accumulators (filled rows, dead letters) the driver reports. Without a
    ``dlq_topic`` rejected records are only counted: a backfill re-reads records the stream already
    sent to the dead-letter topic, and must not send them again."""

    kafka_config: dict[str, str]
    input_topic: str
    dlq_topic: str | None
    state: FillState
    batch_id: int
    counters: tuple[Any, Any]

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        received = [b for b in batches if b.num_rows]
        if not received:
            return
        events = pa.Table.from_batches(received).to_pandas()
        partitions = events["partition"].unique()
        parts = [(partitions[0], events)] if len(partitions) == 1 else events.groupby("partition", sort=False)
        for partition, part in parts:  # one Kafka partition per task, unless Spark split or merged ranges
            filled = self.fill_partition(int(partition), part)
            if filled is not None:
                yield filled

    def fill_partition(self, partition: int, events: pd.DataFrame) -> pa.RecordBatch | None:
        rejected = events["reason"].notna().to_numpy()
        if rejected.any():
            if self.dlq_topic is None:
                self.counters[1].add(int(rejected.sum()))
            else:
                self._dead_letters(self.dlq_topic, events[rejected])
            events = events[~rejected]
        if events.empty:
            return None
        prior = self.state.prior(partition, self.batch_id, events["instrument_id"].unique())
        states, columns = fill_frame(prior, events.rename(columns={"event_key": "event_id"}))
        self.state.write(partition, self.batch_id, {**prior, **states})
        rows = len(columns["event_time"])
        self.counters[0].add(rows)
        columns["batch_id"] = np.full(rows, self.batch_id, dtype=np.int64)
        columns["processed_time"] = np.full(rows, time.time_ns() // 1000, dtype=np.int64)
        return to_arrow(columns)

    def _dead_letters(self, dlq_topic: str, rejected: pd.DataFrame) -> None:
        """Original bytes to the DLQ with the reason and source coordinates in headers; delivered before
        the task ends, so a committed batch never lost one (a replayed batch may send one twice)."""
        producer = _producer(self.kafka_config)
        failures: list[str] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        topic = self.input_topic.encode()
        for key, value, reason, partition, offset in rejected[
            ["kafka_key", "value", "reason", "partition", "offset"]
        ].itertuples(index=False):
            headers = [
                ("reason", reason.encode()),
                ("source.topic", topic),
                ("source.partition", str(partition).encode()),
                ("source.offset", str(offset).encode()),
            ]
            producer.produce(dlq_topic, value, key, headers=headers, on_delivery=delivered)
            producer.poll(0)
        remaining = producer.flush(60)
        if remaining or failures:
            raise RuntimeError(
                f"{remaining or len(failures)} dead letters not delivered to {dlq_topic}: {failures[:1]}"
            )
        self.counters[1].add(len(rejected))
