"""The enrichment stream as a managed, detached application: start, health, restart, stop.

The stream (``spark_apps/enrichment_stream.py``) runs under ``spark-submit`` with the
pinned connectors, detached from whoever started it (see ``tickflow.appctl`` for why at most
one copy ever runs). Its health comes from what the app itself writes after every
micro-batch (``StreamSettings.progress``: batch, rates, DLQ total, state rows, end offsets)
and from the topic's high watermarks, so "no batch lately" is told apart from "idle". Where
Prometheus runs, its figures take the watermarks' place: the lag its alert rules read, and
whether its TickflowStreamNoBatch alert fires, so the health check and the alert are one
definition of "stalled" (``monitored_figures``):

    stopped   not running, stopped on request
    dead      not running, nobody asked for that
    starting  running, no batch yet, within the start grace period
    stalled   running, but no batch for too long while input waits (or none since start)
    healthy   running, batches coming (or idle with nothing to read, once booted)

Nothing here imports Airflow or pyspark; the Airflow operators call it.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tickflow.appctl import AppControl, AppRecord, StartResult
from tickflow.errors import TickflowError
from tickflow.kafka_auth import HEALTH_GROUP, Principal, kafka_client_config
from tickflow.settings import REPO_ROOT, Settings
from tickflow.stream.progress import StreamProgress
from tickflow.stream.settings import SPARK_APP_NAME, StreamSettings

if TYPE_CHECKING:
    from tickflow.fill.snapshot import SnapshotInfo
    from tickflow.runtime.location import Location

APP_NAME = "enrichment-stream"
ENTRY_POINT = REPO_ROOT / "spark_apps" / "enrichment_stream.py"
# What Prometheus knows of the stream (docs/operations.md): the recording rule of its lag
# (LSO - committed, summed over md.events' partitions) and the alert of a stream without batches.
STREAM_LAG_RECORDS = "tickflow:stream_lag_records"
NO_BATCH_ALERT = "TickflowStreamNoBatch"


class Verdict(StrEnum):
    HEALTHY = "healthy"
    STARTING = "starting"
    STALLED = "stalled"
    DEAD = "dead"
    STOPPED = "stopped"


@dataclass(frozen=True)
class HealthLimits:
    """``boot_s``: how long the app needs to start its query (JVM, session, metastore, registry);
    ``start_grace_s``: how long the first micro-batch may take; ``stall_after_s``: the longest
    time without a micro-batch while input waits."""

    boot_s: float = 90.0
    start_grace_s: float = 300.0
    stall_after_s: float = StreamSettings.model_fields["stall_after_s"].default

    @classmethod
    def of(cls, stream: StreamSettings) -> HealthLimits:
        """The limits the settings give: ``stall_after_s`` is also the exported threshold of the alert."""
        return cls(stall_after_s=stream.stall_after_s)


@dataclass(frozen=True)
class MonitoredFigures:
    """What Prometheus says of the stream: the lag its alerts read, and whether TickflowStreamNoBatch fires."""

    lag: int
    no_batch_firing: bool


@dataclass(frozen=True)
class StreamHealth:
    verdict: Verdict
    reason: str
    pid: int | None = None
    uptime_s: float | None = None
    batch_id: int | None = None
    batch_age_s: float | None = None
    input_rate: float | None = None
    processed_rate: float | None = None
    lag: int | None = None
    dlq_total: int | None = None
    state_rows: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.HEALTHY

    def line(self) -> str:
        """One line a person reads in a task log to know how the stream is."""
        parts = [f"enrichment stream {self.verdict.value.upper()}: {self.reason}"]
        if self.pid is not None:
            parts.append(f"pid {self.pid}, up {_duration(self.uptime_s)}")
        if self.batch_id is not None:
            parts.append(f"batch {self.batch_id} {_duration(self.batch_age_s)} ago")
        if self.input_rate is not None:
            parts.append(f"in {self.input_rate:,.0f}/s, processed {self.processed_rate or 0:,.0f}/s")
        if self.lag is not None:
            parts.append(f"lag {self.lag:,}")
        if self.dlq_total is not None:
            parts.append(f"DLQ {self.dlq_total:,}")
        if self.state_rows is not None:
            parts.append(f"state {self.state_rows:,} rows")
        return "; ".join(parts)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def lag_of(end_offsets: Mapping[str, Mapping[str, int]] | None, high_watermarks: Mapping[tuple[str, int], int]) -> int:
    """Records in the topic beyond the last batch's end offsets (partitions the batch never saw count whole)."""
    done = {
        (topic, int(partition)): int(offset)
        for topic, offsets in (end_offsets or {}).items()
        for partition, offset in offsets.items()
    }
    return sum(max(high - done.get(key, 0), 0) for key, high in high_watermarks.items())


def assess(
    record: AppRecord | None,
    stopped_at: float | None,
    progress: StreamProgress | None,
    lag: int | None,
    now: float,
    limits: HealthLimits = HealthLimits(),
    no_batch_alert: bool | None = None,
) -> StreamHealth:
    """The verdict from the facts; pure, so every rule is unit-tested.

    ``no_batch_alert`` is whether Prometheus's TickflowStreamNoBatch fires (None: no word from Prometheus).
    Given, it decides stalled-or-not once the app has run a batch; what only this machine knows (is the
    process there, was it stopped on request, is it still starting) comes from the app record either way.
    """
    if record is None:
        if stopped_at is not None:
            return StreamHealth(Verdict.STOPPED, f"stopped on request at {time.ctime(stopped_at)}")
        return StreamHealth(Verdict.DEAD, "not running")
    uptime = now - record.started_at
    common: dict[str, Any] = {"pid": record.pid, "uptime_s": uptime, "lag": lag}
    if progress is None or progress.written_at < record.started_at:
        # Spark reports no progress for triggers without new data (only "idle" events, which the app
        # does not record), so after a restart with nothing to read there is no batch to show.
        if lag == 0 and uptime >= limits.boot_s:
            return StreamHealth(Verdict.HEALTHY, "idle since start, nothing to read", **common)
        if uptime < limits.start_grace_s:
            return StreamHealth(Verdict.STARTING, "no micro-batch yet", **common)
        return StreamHealth(Verdict.STALLED, f"no micro-batch in the {uptime:.0f}s since start", **common)
    age = now - progress.written_at
    common.update(
        batch_id=progress.batch_id,
        batch_age_s=age,
        input_rate=progress.input_rows_per_second,
        processed_rate=progress.processed_rows_per_second,
        dlq_total=progress.dlq_total,
        state_rows=progress.state_rows,
    )
    waiting = "unknown input" if lag is None else f"{lag:,} records waiting"
    if no_batch_alert is not None:
        if no_batch_alert:
            return StreamHealth(
                Verdict.STALLED, f"{NO_BATCH_ALERT} fires: no micro-batch for {age:.0f}s with {waiting}", **common
            )
        if age > limits.stall_after_s and lag != 0:
            # Prometheus evaluates its rules every few seconds: a stall this recent may not fire yet.
            return StreamHealth(
                Verdict.HEALTHY,
                f"no micro-batch for {age:.0f}s with {waiting}, but {NO_BATCH_ALERT} does not fire",
                **common,
            )
    if age > limits.stall_after_s and (lag is None or lag > 0):
        return StreamHealth(Verdict.STALLED, f"no micro-batch for {age:.0f}s with {waiting}", **common)
    if age > limits.stall_after_s:
        return StreamHealth(Verdict.HEALTHY, "idle, nothing to read", **common)
    return StreamHealth(Verdict.HEALTHY, "micro-batches flowing", **common)


@dataclass(frozen=True)
class RestoreResult:
    snapshot: SnapshotInfo
    start: StartResult
    previous_checkpoint: Location | None

    def line(self) -> str:
        kept = (
            f"previous checkpoint kept at {self.previous_checkpoint}"
            if self.previous_checkpoint
            else "no previous checkpoint"
        )
        return f"enrichment stream RESTORED from {self.snapshot.line()}; {kept}; {self.start.reason}"


class NamedAlert(Protocol):
    @property
    def name(self) -> str: ...


class AlertSource(Protocol):
    """What the health check needs from Prometheus (tickflow.monitoring.promql.Prometheus fits)."""

    def value(self, promql: str) -> float | None: ...

    def firing(self) -> Sequence[NamedAlert]: ...


def monitored_figures(prometheus: AlertSource) -> MonitoredFigures | None:
    """The stream's lag and no-batch alert as Prometheus has them; None when it has no lag (its exporter is down
    or not scraped yet), since the alert needs the lag and its silence then says nothing. Raises
    PrometheusUnavailable when Prometheus does not answer."""
    lag = prometheus.value(STREAM_LAG_RECORDS)
    if lag is None or not math.isfinite(lag):
        return None
    firing = any(alert.name == NO_BATCH_ALERT for alert in prometheus.firing())
    return MonitoredFigures(max(round(lag), 0), firing)


class WatermarkSource(Protocol):
    """What lag needs from a Kafka consumer (confluent_kafka.Consumer fits)."""

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...

    def get_watermark_offsets(self, partition: Any, timeout: float = ..., cached: bool = ...) -> Any: ...


def high_watermarks(consumer: WatermarkSource, topic: str, timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
    from confluent_kafka import TopicPartition

    metadata = consumer.list_topics(topic, timeout=timeout_s)
    partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
    marks = {}
    for partition in partitions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
        marks[(topic, int(partition))] = int(high)
    return marks


class EnrichmentStream:
    """The one enrichment stream of a state directory."""

    def __init__(self, settings: Settings, stream: StreamSettings | None = None, master: str | None = None) -> None:
        self.settings = settings
        self.stream: StreamSettings = stream or StreamSettings()
        self.master = master or settings.spark_master
        self.control = AppControl(APP_NAME, settings.root)

    @property
    def log_path(self) -> Path:
        from tickflow.runtime.paths import StatePaths

        return StatePaths(self.settings.root).log(APP_NAME)

    @property
    def progress_path(self) -> Path:
        return self.stream.progress(self.settings)

    def command(self) -> list[str]:
        from tickflow.runtime.tooling import pyspark_home
        from tickflow.spark import submit_args
        from tickflow.stream.app import session_conf

        spark_submit = pyspark_home() / "bin" / "spark-submit"
        conf = submit_args(
            self.settings,
            SPARK_APP_NAME,
            self.master,
            extra=session_conf(self.settings, self.stream),
            java_options=self.stream.java_options,
        )
        return [str(spark_submit), *conf, str(ENTRY_POINT)]

    def environment(self) -> dict[str, str]:
        """The caller's environment without Airflow's (its secrets are no business of the app)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            TICKFLOW_STATE_DIR=str(self.settings.root),
            SPARK_LOCAL_IP=self.settings.host,
            PYSPARK_PYTHON=sys.executable,
            PYSPARK_DRIVER_PYTHON=sys.executable,
        )
        return env

    def start(
        self, restart: bool = False, grace_s: float | None = None, before_start: Callable[[], object] | None = None
    ) -> StartResult:
        """Start unless running; with ``restart``, stop the running copy first (one step under the lock, in
        which ``before_start`` runs once no copy runs)."""
        return self.control.ensure_started(
            self.command(),
            self.environment(),
            self.log_path,
            cwd=REPO_ROOT,
            restart=restart,
            grace_s=self.settings.app_stop_grace_s if grace_s is None else grace_s,
            before_start=before_start,
        )

    def restore(self, snapshot_id: str, grace_s: float | None = None) -> RestoreResult:
        """Stop the app, replace its checkpoint with one that starts from the snapshot, start it: one step
        under the app's lock, so no other start slips in between (see tickflow.fill.snapshot)."""
        from tickflow.fill.snapshot import find_snapshot, install_restore, snapshot_state

        snapshot = find_snapshot(self.settings, snapshot_id)
        if snapshot.input_topic != self.stream.input_topic:
            raise TickflowError(
                f"Snapshot {snapshot_id} is of {snapshot.input_topic}, but the stream reads "
                f"{self.stream.input_topic}: pick a snapshot of {self.stream.input_topic}."
            )
        states = snapshot_state(self.settings, snapshot_id)
        moved: list[Location | None] = []
        checkpoint = self.stream.checkpoint(self.settings)
        result = self.start(
            restart=True,
            grace_s=grace_s,
            before_start=lambda: moved.append(install_restore(checkpoint, snapshot, states)),
        )
        return RestoreResult(snapshot, result, moved[0] if moved else None)

    def stop(self, grace_s: float | None = None) -> AppRecord | None:
        return self.control.stop(self.settings.app_stop_grace_s if grace_s is None else grace_s)

    def progress(self) -> StreamProgress | None:
        """The app's last micro-batch (None before the first, or when the file is unreadable)."""
        return StreamProgress.read(self.progress_path)

    def health_with_lag(self, principal: Principal) -> StreamHealth:
        """:meth:`health` with the input's lag, read through a consumer logged in as ``principal`` (the health
        group, which commits nothing)."""
        from confluent_kafka import Consumer

        consumer = Consumer({**kafka_client_config(self.settings, principal), "group.id": HEALTH_GROUP, "log_level": 3})
        try:
            return self.health(consumer)
        finally:
            consumer.close()

    def health(
        self,
        consumer: WatermarkSource | None = None,
        limits: HealthLimits | None = None,
        monitored: MonitoredFigures | None = None,
    ) -> StreamHealth:
        """The verdict, with the lag from Prometheus (``monitored``, with its no-batch alert) or else from the
        topic's high watermarks (``consumer``), or unknown."""
        progress = self.progress()
        lag = None
        if monitored is not None:
            lag = monitored.lag
        elif consumer is not None:
            marks = high_watermarks(consumer, self.stream.input_topic)
            lag = lag_of(progress.end_offsets if progress else None, marks)
        return assess(
            self.control.running(),
            self.control.stopped_on_request(),
            progress,
            lag,
            time.time(),
            limits or HealthLimits.of(self.stream),
            no_batch_alert=monitored.no_batch_firing if monitored is not None else None,
        )
