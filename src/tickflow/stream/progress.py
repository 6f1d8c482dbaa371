"""What the stream reports after every micro-batch: a JSON file for supervisors, committed offsets for lag tools."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tickflow.kafka_auth import Principal, kafka_client_config
from tickflow.settings import Settings
from tickflow.stream.settings import StreamSettings

if TYPE_CHECKING:
    from pyspark.sql.streaming.query import StreamingQuery

log = logging.getLogger(__name__)


class StreamProgress(BaseModel):
    """One micro-batch as the app reports it (``progress.json``), read by health checks, the CLI and tests."""

    written_at: float
    query: str | None = None
    run_id: str | None = None
    batch_id: int | None = None
    batch_timestamp: str | None = None
    num_input_rows: int | None = None
    input_rows_per_second: float | None = None
    processed_rows_per_second: float | None = None
    batch_duration_ms: int | None = None
    durations_ms: dict[str, int] | None = None  # Spark's phases of the batch (addBatch, walCommit, ...)
    state_rows: int = 0
    dlq_total: int = 0
    filled_total: int = 0
    events_in_total: int | None = None  # input records of every micro-batch of this run (None: an older file)
    end_offsets: dict[str, dict[str, int]] | None = None
    lag_events: int | None = None  # records in the input that this batch did not reach (when it was planned)
    output_age_s: float | None = None  # how old the newest published event was when the batch ended

    @classmethod
    def read(cls, path: Path) -> StreamProgress | None:
        try:
            return cls.model_validate_json(path.read_text())
        except (OSError, ValueError):
            return None


def _offsets(source: dict[str, Any], key: str) -> dict[str, dict[str, int]]:
    """A Kafka source's offsets in a query progress (Spark gives them as JSON text or as a dict)."""
    offsets = source.get(key)
    return json.loads(offsets) if isinstance(offsets, str) else (offsets or {})


def events_behind(progress: dict[str, Any]) -> int | None:
    """How many input records were already in Kafka beyond a batch's end when Spark planned it: the stream's lag."""
    sources = progress.get("sources") or []
    if not sources:
        return None
    latest, end = _offsets(sources[0], "latestOffset"), _offsets(sources[0], "endOffset")
    return sum(
        max(0, int(offset) - int(end.get(topic, {}).get(partition, offset)))
        for topic, offsets in latest.items()
        for partition, offset in offsets.items()
    )


class ProgressReporter:
    """Writes each batch's progress to a JSON file and commits its end offsets to the consumer group.

    A thread polls the query's last progress as JSON (two JVM calls) rather than registering a Python
    StreamingQueryListener: PySpark converts every event for a Python listener field by field, some forty
    Py4J calls and class look-ups per batch on the driver. A batch that starts and ends between two polls gets
    no report of its own: the next one's end offsets and running totals include it."""

    def __init__(
        self,
        query: StreamingQuery,
        settings: Settings,
        stream: StreamSettings,
        counters: Any,
        on_progress: Callable[[dict[str, Any], Any], None] | None = None,
        interval_s: float = 0.2,
    ) -> None:
        from confluent_kafka import Consumer

        self.query = query
        self.path = stream.progress(settings)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.counters = counters
        self.on_progress = on_progress
        self.interval_s = interval_s
        self.consumer = Consumer(
            {
                **kafka_client_config(settings, Principal.STREAM),
                "group.id": stream.consumer_group,
                "enable.auto.commit": False,
            }
        )
        self.last: tuple[str, int] | None = None  # run id and batch id of the batch reported last
        self.events_in = 0  # input records of the batches reported, and of any the poller did not see on its own
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="stream-progress", daemon=True)

    def _poll(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                self.check()
            except Exception as error:  # noqa: BLE001 - reporting must never stop the stream
                if self.stopping.is_set():
                    return
                log.warning("reporting the stream's progress failed: %s", error)

    def check(self) -> None:
        """Report the query's last batch if it is new."""
        progress = self.query._jsq.lastProgress()
        if progress is None or (str(progress.runId()), progress.batchId()) == self.last:
            return
        self.events_in += self._input_rows_since_last()
        self.last = (str(progress.runId()), progress.batchId())
        info = json.loads(progress.json())
        self.report(info)
        if self.on_progress is not None:
            self.on_progress(info, self.counters)

    def _input_rows_since_last(self) -> int:
        """Input records of the batches since the one reported last: the newest of the query's recent progresses
        back to it (usually one; more when batches ran between two polls)."""
        recent = self.query._jsq.recentProgress()
        rows = 0
        for index in range(len(recent) - 1, -1, -1):
            batch = recent[index]
            if (str(batch.runId()), batch.batchId()) == self.last:
                break
            rows += int(batch.numInputRows())
        return rows

    def report(self, progress: dict[str, Any]) -> StreamProgress:
        from confluent_kafka import TopicPartition

        end_offsets = _offsets((progress.get("sources") or [{}])[0], "endOffset")
        if end_offsets:
            partitions = [
                TopicPartition(topic, int(partition), int(offset))
                for topic, offsets in end_offsets.items()
                for partition, offset in offsets.items()
            ]
            try:
                self.consumer.commit(offsets=partitions, asynchronous=False)
            except Exception as error:  # noqa: BLE001 - lag reporting must never stop the stream
                log.warning("committing offsets for lag tools failed: %s", error)
        report = StreamProgress(
            written_at=time.time(),
            query=progress.get("name"),
            run_id=progress.get("runId"),
            batch_id=progress.get("batchId"),
            batch_timestamp=progress.get("timestamp"),
            num_input_rows=progress.get("numInputRows"),
            input_rows_per_second=progress.get("inputRowsPerSecond"),
            processed_rows_per_second=progress.get("processedRowsPerSecond"),
            batch_duration_ms=(progress.get("durationMs") or {}).get("triggerExecution"),
            durations_ms=progress.get("durationMs") or None,
            state_rows=self.counters.instruments,
            dlq_total=self.counters.dlq,
            filled_total=self.counters.filled,
            events_in_total=self.events_in,
            end_offsets=end_offsets or None,
            lag_events=events_behind(progress),
            output_age_s=self.counters.output_age_s(time.time()),
        )
        partial = self.path.with_suffix(".partial")
        partial.write_text(report.model_dump_json(indent=2))
        partial.replace(self.path)
        return report

    def close(self) -> None:
        """Stop reporting, the last batch reported: stop the poller, close the consumer (it would retry a stopped
        broker forever)."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        try:
            self.check()
        except Exception as error:  # noqa: BLE001 - the JVM may be gone
            log.warning("reporting the stream's last progress failed: %s", error)
        self.consumer.close()


def attach_progress(
    query: StreamingQuery,
    settings: Settings,
    stream: StreamSettings,
    counters: Any,
    on_progress: Callable[[dict[str, Any], Any], None] | None = None,
) -> ProgressReporter:
    """Report every batch of ``query`` (``on_progress(progress, counters)`` too, e.g. the CLI's line) until
    ``close()``."""
    reporter = ProgressReporter(query, settings, stream, counters, on_progress)
    reporter.thread.start()
    return reporter
