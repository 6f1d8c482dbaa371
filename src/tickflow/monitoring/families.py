"""tickflow-exporter's metric families from what it gathered, pure: names, help texts and labels in one place
(docs/operations.md lists them, the rules in monitoring/rules/ read them)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tickflow.monitoring.lag import TopicLag
from tickflow.stream.progress import StreamProgress


def lag_families(lags: Sequence[TopicLag] | None) -> list[Metric]:
    """``lags`` None: Kafka did not answer, so only ``tickflow_exporter_kafka_up 0`` and no lag at all."""
    up = GaugeMetricFamily(
        "tickflow_exporter_kafka_up",
        "1 when Kafka answered this scrape's offset queries; with 0 there is no consumer-group lag series.",
        value=0 if lags is None else 1,
    )
    if lags is None:
        return [up]
    labels = ["group", "topic", "stage"]
    records = GaugeMetricFamily(
        "tickflow_consumer_group_lag_records",
        "Records of the topic the group has not consumed: last stable offset minus committed offset, summed over "
        "partitions (a partition without a commit counts from its earliest offset).",
        labels=labels,
    )
    seconds = GaugeMetricFamily(
        "tickflow_consumer_group_lag_seconds",
        "Age of the oldest record of the topic the group has not consumed; 0 when it is caught up.",
        labels=labels,
    )
    for lag in lags:
        values = [lag.stage.group, lag.topic, lag.stage.stage]
        records.add_metric(values, lag.records)
        if lag.seconds is not None:
            seconds.add_metric(values, lag.seconds)
    return [up, records, seconds]


def stream_families(progress: StreamProgress | None) -> list[Metric]:
    """The stream's last report (``progress.json``); nothing before its first micro-batch."""
    if progress is None:
        return []
    families: list[Metric] = [
        GaugeMetricFamily(
            "tickflow_stream_last_batch_timestamp_seconds",
            "When the enrichment stream reported its last micro-batch (Unix time).",
            value=progress.written_at,
        ),
        GaugeMetricFamily(
            "tickflow_stream_state_instruments", "Instruments in the stream's fill state.", value=progress.state_rows
        ),
        CounterMetricFamily(
            "tickflow_stream_events_in",
            "Input records the stream has read since it started: filled plus dead-lettered.",
            value=events_in(progress),
        ),
        CounterMetricFamily(
            "tickflow_stream_events_filled",
            "Filled rows the stream has published since it started.",
            value=progress.filled_total,
        ),
        CounterMetricFamily(
            "tickflow_stream_dead_letters",
            "Input records the stream has sent to its dead-letter topic since it started.",
            value=progress.dlq_total,
        ),
    ]
    duration_s = None if progress.batch_duration_ms is None else progress.batch_duration_ms / 1000
    optional = [
        ("tickflow_stream_last_batch_id", "The id of the stream's last micro-batch.", progress.batch_id),
        ("tickflow_stream_batch_duration_seconds", "How long the stream's last micro-batch took.", duration_s),
        (
            "tickflow_stream_input_rows_per_second",
            "Spark's input rate over the stream's last micro-batch.",
            progress.input_rows_per_second,
        ),
        (
            "tickflow_stream_event_latency_seconds",
            "How old the newest event the stream published was when its last micro-batch ended.",
            progress.output_age_s,
        ),
    ]
    families += [GaugeMetricFamily(name, text, value=value) for name, text, value in optional if value is not None]
    return families


def events_in(progress: StreamProgress) -> int:
    """Records the stream has read (Spark's input rows of every micro-batch of this run). A progress file written
    before the stream counted them gives the filled rows and dead letters, which fall short by the events a
    micro-batch merges into another's row: a repeated event_id (dropped), events of one instrument at one time."""
    if progress.events_in_total is not None:
        return progress.events_in_total
    return progress.filled_total + progress.dlq_total


def connector_stage_family(stages: Mapping[str, str]) -> Metric:
    """Which connector is which stage: Connect's own series name the connector, the rules select by stage (joined
    on ``connector``), so they hold whatever the settings call the connectors."""
    family = GaugeMetricFamily(
        "tickflow_connector_stage_info",
        "The stage of the platform a Kafka Connect connector is.",
        labels=["connector", "stage"],
    )
    for connector, stage in sorted(stages.items()):
        family.add_metric([connector, stage], 1)
    return family


def threshold_families(stall_after_s: float, sink_lag_after_s: float, stopped_on_request: bool) -> list[Metric]:
    """The alerts' thresholds, from the settings the health checks read too, and whether the stream was stopped on
    purpose (then "no micro-batch" is no alert)."""
    return [
        GaugeMetricFamily(
            "tickflow_stream_stall_threshold_seconds",
            "The longest time without a micro-batch while input waits before the stream counts as stalled.",
            value=stall_after_s,
        ),
        GaugeMetricFamily(
            "tickflow_hbase_sink_lag_threshold_seconds",
            "How old the oldest record not yet in HBase may get while the sink's lag grows before it alerts.",
            value=sink_lag_after_s,
        ),
        GaugeMetricFamily(
            "tickflow_stream_stopped_on_request",
            "1 when somebody stopped the stream on purpose and nobody started it since.",
            value=1 if stopped_on_request else 0,
        ),
    ]


def dead_letter_family(counts: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(
        "tickflow_stream_dead_letter_records",
        "Records that reached the stream's dead-letter topic since the exporter started, by the rule that "
        "rejected them.",
        labels=["reason"],
    )
    for code, count in counts.items():
        family.add_metric([code], count)
    return family


def listening_family(probes: Sequence[tuple[str, str, bool]]) -> Metric:
    """``probes``: service, address, whether it accepts connections."""
    family = GaugeMetricFamily(
        "tickflow_service_listening",
        "1 when a service the stack started (and did not stop) accepts TCP connections on its port.",
        labels=["service", "address"],
    )
    for service, address, listening in probes:
        family.add_metric([service, address], 1 if listening else 0)
    return family


def airflow_family(health: Mapping[str, Any]) -> Metric:
    """Airflow's monitor report: ``{"scheduler": {"status": "healthy", ...}, ...}``."""
    family = GaugeMetricFamily(
        "tickflow_airflow_component_healthy",
        "1 when Airflow's monitor reports the component healthy.",
        labels=["component"],
    )
    for component, report in sorted(health.items()):
        if isinstance(report, dict) and "status" in report:
            family.add_metric([component], 1 if report["status"] == "healthy" else 0)
    return family


def filesystem_families(stats: os.statvfs_result) -> list[Metric]:
    return [
        GaugeMetricFamily(
            "tickflow_state_dir_filesystem_avail_bytes",
            "Space left for tickflow on the state directory's file system.",
            value=stats.f_bavail * stats.f_frsize,
        ),
        GaugeMetricFamily(
            "tickflow_state_dir_filesystem_size_bytes",
            "Size of the state directory's file system.",
            value=stats.f_blocks * stats.f_frsize,
        ),
    ]


def collect_duration_family(seconds: float) -> Metric:
    return GaugeMetricFamily(
        "tickflow_exporter_collect_duration_seconds", "How long this scrape's figures took to gather.", value=seconds
    )
