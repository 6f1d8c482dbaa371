"""tickflow-exporter on fakes of Kafka's clients, a progress file and a state directory of its own: the lag per stage,
the stream's figures, dead letters by reason, the probes, and an exposition promtool accepts."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_END,
    OFFSET_INVALID,
    TIMESTAMP_CREATE_TIME,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from tickflow.monitoring.exporter import DeadLetterTally, KafkaLag, TickflowCollector
from tickflow.monitoring.lag import Stage, TopicLag
from tickflow.settings import Settings
from tickflow.sinks.hbase import HBaseSinkSettings
from tickflow.stream.progress import StreamProgress
from tickflow.stream.settings import StreamSettings

NOW = 1_800_000_000.0
STREAM = Stage("tickflow-enrichment", "md.events", "stream")
SINK = Stage("connect-md-enriched-hbase-sink", "md.enriched", "hbase_sink")
# (topic, partition): (earliest, last stable offset)
OFFSETS = {
    ("md.events", 0): (0, 100),
    ("md.events", 1): (0, 50),
    ("md.enriched", 0): (0, 11),
    ("md.enriched", 1): (5, 40),
}
COMMITTED = {STREAM.group: {("md.events", 0): 90, ("md.events", 1): 50}, SINK.group: {("md.enriched", 0): 10}}
# The committed records at and after the groups' offsets, (offset, Kafka timestamp in ms): md.enriched 0 has only
# the marker of its last transaction at offset 10, md.enriched 1 was never committed to.
RECORDS = {
    ("md.events", 0): [(90, (NOW - 12) * 1000), (91, (NOW - 11) * 1000)],
    ("md.enriched", 1): [(5, (NOW - 30) * 1000)],
}


def answered(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class FakeAdmin:
    """Kafka's offsets as confluent_kafka's AdminClient answers them."""

    def __init__(self, down: bool = False) -> None:
        self.down = down

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if self.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        topics: dict[str, Any] = {}
        for name, partition in OFFSETS:
            topics.setdefault(name, SimpleNamespace(partitions={})).partitions[partition] = None
        return SimpleNamespace(topics=topics)

    def list_consumer_group_offsets(self, requests: list[Any], request_timeout: float = -1) -> dict[str, Any]:
        (request,) = requests  # one group per call: the client takes no more
        committed = COMMITTED.get(request.group_id, {})
        partitions = [
            TopicPartition(tp.topic, tp.partition, committed.get((tp.topic, tp.partition), OFFSET_INVALID))
            for tp in request.topic_partitions
        ]
        return {request.group_id: answered(SimpleNamespace(topic_partitions=partitions))}

    def list_offsets(self, specs: dict[Any, Any], isolation_level: Any = None, request_timeout: float = -1) -> Any:
        answers = {}
        for tp, spec in specs.items():
            earliest, stable = OFFSETS[(tp.topic, tp.partition)]
            if type(spec).__name__ == "LatestSpec":
                assert isolation_level == IsolationLevel.READ_COMMITTED  # the last stable offset, not the high mark
                answers[tp] = answered(SimpleNamespace(offset=stable))
            else:
                answers[tp] = answered(SimpleNamespace(offset=earliest))
        return answers


class FakeMessage:
    def __init__(
        self, topic: str, partition: int, timestamp_ms: float = 0, error: KafkaError | None = None, reason: str = ""
    ) -> None:
        self._topic, self._partition, self._timestamp, self._error = topic, partition, int(timestamp_ms), error
        self._headers = [("reason", reason.encode()), ("source.topic", b"md.events")] if reason else None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def error(self) -> KafkaError | None:
        return self._error

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, self._timestamp

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


class FakeReader:
    """A read_committed consumer over RECORDS: an assigned partition answers with its first record at or after the
    offset, or with its end when there is none."""

    def __init__(self) -> None:
        self.queue: list[FakeMessage] = []
        self.assigned: set[tuple[str, int]] = set()

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.assigned.add((tp.topic, tp.partition))
            later = [ts for offset, ts in RECORDS.get((tp.topic, tp.partition), []) if offset >= tp.offset]
            eof = None if later else KafkaError(KafkaError._PARTITION_EOF)
            self.queue.append(FakeMessage(tp.topic, tp.partition, later[0] if later else 0, eof))

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned -= gone
        self.queue = [m for m in self.queue if (m.topic(), m.partition()) not in gone]

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        return self.queue.pop(0) if self.queue else None


class FakeDeadLetters:
    """md.dlq as a consumer sees it: ``partitions`` of them (None: no such topic yet), and what arrives."""

    def __init__(self, partitions: int | None, arriving: list[FakeMessage]) -> None:
        self.partitions = partitions
        self.arriving = arriving
        self.assignment: list[TopicPartition] = []

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if self.partitions is None:
            return SimpleNamespace(topics={})
        return SimpleNamespace(
            topics={topic: SimpleNamespace(error=None, partitions=dict.fromkeys(range(self.partitions)))}
        )

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assignment = partitions

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        batch, self.arriving = self.arriving[:num_messages], self.arriving[num_messages:]
        return batch


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


@pytest.fixture
def stream(settings: Settings) -> StreamSettings:
    return StreamSettings(progress_file=settings.root / "stream" / "progress.json", stall_after_s=20)


def write_progress(stream: StreamSettings, settings: Settings, **fields: Any) -> None:
    path = stream.progress(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(StreamProgress(written_at=NOW - 3, **fields).model_dump_json())


def collector(
    settings: Settings,
    stream: StreamSettings,
    kafka_down: bool = False,
    airflow: dict[str, Any] | None = None,
    closed: tuple[str, ...] = (),
) -> TickflowCollector:
    dead_letters = DeadLetterTally(
        FakeDeadLetters(3, [FakeMessage("md.dlq", 0, reason="event_time 12s in the future")] * 2), stream.dlq_topic
    )
    dead_letters.step(1.0)  # to the topic's end
    dead_letters.step(1.0)  # two arrive
    return TickflowCollector(
        settings,
        stream,
        HBaseSinkSettings(lag_alert_after_s=45),
        KafkaLag(FakeAdmin(down=kafka_down), FakeReader(), [STREAM, SINK], clock=lambda: NOW),
        dead_letters,
        lambda: airflow,
        listening=lambda host, port: port not in {getattr(settings.ports, name) for name in closed},
    )


def scrape(source: TickflowCollector) -> str:
    registry = CollectorRegistry()
    registry.register(source)
    return generate_latest(registry).decode()


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(exposition: str, name: str, **labels: str) -> float | None:
    return samples(exposition).get((name, frozenset(labels.items())))


def names(exposition: str) -> set[str]:
    return {name for name, _ in samples(exposition)}


def test_lag_runs_from_each_groups_committed_offsets_to_the_last_stable_offset() -> None:
    reader = FakeReader()
    lags = KafkaLag(FakeAdmin(), reader, [STREAM, SINK], clock=lambda: NOW).read()
    assert lags == [
        TopicLag(STREAM, "md.events", 10, 12.0),  # partition 1 is caught up
        # partition 0: one offset left, its last transaction's marker, so nothing to read; partition 1: no commit,
        # all 35 records from the earliest behind, the oldest 30 s old
        TopicLag(SINK, "md.enriched", 35, 30.0),
    ]
    assert reader.assigned == set()  # nothing left assigned between scrapes


def test_a_scrape_has_every_figure(settings: Settings, stream: StreamSettings) -> None:
    write_progress(
        stream,
        settings,
        batch_id=41,
        batch_duration_ms=250,
        input_rows_per_second=4800.0,
        state_rows=500,
        filled_total=9_000,
        dlq_total=12,
        events_in_total=9_100,
        output_age_s=0.4,
    )
    for service in ("hbase-thrift", "metastore"):  # the stack started these two, and only these
        (settings.root / "run").mkdir(parents=True, exist_ok=True)
        (settings.root / "run" / f"{service}.json").write_text("{}")
    airflow = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "unhealthy", "latest": None}}
    text = scrape(collector(settings, stream, airflow=airflow, closed=("hbase_thrift",)))

    assert value(text, "tickflow_exporter_kafka_up") == 1
    lag = {"group": STREAM.group, "topic": "md.events", "stage": "stream"}
    assert value(text, "tickflow_consumer_group_lag_records", **lag) == 10
    assert value(text, "tickflow_consumer_group_lag_seconds", **lag) == 12
    sink = {"group": SINK.group, "topic": "md.enriched", "stage": "hbase_sink"}
    assert value(text, "tickflow_consumer_group_lag_records", **sink) == 35
    assert value(text, "tickflow_consumer_group_lag_seconds", **sink) == 30

    assert value(text, "tickflow_stream_last_batch_timestamp_seconds") == NOW - 3
    assert value(text, "tickflow_stream_last_batch_id") == 41
    assert value(text, "tickflow_stream_batch_duration_seconds") == 0.25
    assert value(text, "tickflow_stream_input_rows_per_second") == 4800
    assert value(text, "tickflow_stream_state_instruments") == 500
    assert value(text, "tickflow_stream_event_latency_seconds") == 0.4
    assert value(text, "tickflow_stream_events_filled_total") == 9_000
    assert value(text, "tickflow_stream_dead_letters_total") == 12
    assert value(text, "tickflow_stream_events_in_total") == 9_100  # Spark's input rows: more than rows filled
    assert value(text, "tickflow_connector_stage_info", connector=HBaseSinkSettings().name, stage="hbase_sink") == 1
    assert value(text, "tickflow_connector_stage_info", connector="trades-postgres-source", stage="trades_source") == 1
    assert value(text, "tickflow_stream_stall_threshold_seconds") == 20
    assert value(text, "tickflow_hbase_sink_lag_threshold_seconds") == 45
    assert value(text, "tickflow_stream_stopped_on_request") == 0

    assert value(text, "tickflow_stream_dead_letter_records_total", reason="event_time_in_future") == 2
    assert value(text, "tickflow_stream_dead_letter_records_total", reason="not_framed") == 0  # every code, from 0

    assert value(text, "tickflow_service_listening", service="hbase-thrift", address="127.0.0.1:9090") == 0
    assert value(text, "tickflow_service_listening", service="metastore", address="127.0.0.1:9083") == 1
    listening = {labels for name, labels in samples(text) if name == "tickflow_service_listening"}
    assert len(listening) == 2  # not the thrift server nor Airflow: the stack did not start them

    assert value(text, "tickflow_airflow_component_healthy", component="metadatabase") == 1
    assert value(text, "tickflow_airflow_component_healthy", component="scheduler") == 0

    assert (value(text, "tickflow_state_dir_filesystem_size_bytes") or 0) > 0
    assert 0 < (value(text, "tickflow_state_dir_filesystem_avail_bytes") or 0)
    assert 0 <= (value(text, "tickflow_exporter_collect_duration_seconds") or -1) < 1


def test_promtool_accepts_the_exposition(settings: Settings, stream: StreamSettings, promtool: str) -> None:
    write_progress(stream, settings, batch_id=1, batch_duration_ms=250, input_rows_per_second=1.0, output_age_s=1.0)
    (settings.root / "run").mkdir(parents=True)
    (settings.root / "run" / "airflow.json").write_text("{}")
    text = scrape(collector(settings, stream, airflow={"scheduler": {"status": "healthy"}}))
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_without_kafka_there_is_no_lag_at_all(settings: Settings, stream: StreamSettings) -> None:
    """Lag alerts must not fire on numbers that are not there: no series, not stale ones or zeros."""
    write_progress(stream, settings, batch_id=1)
    text = scrape(collector(settings, stream, kafka_down=True))
    assert value(text, "tickflow_exporter_kafka_up") == 0
    assert not {name for name in names(text) if name.startswith("tickflow_consumer_group_lag")}
    assert value(text, "tickflow_stream_last_batch_id") == 1  # the rest is there


def test_before_the_streams_first_batch_only_its_settings_show(settings: Settings, stream: StreamSettings) -> None:
    text = scrape(collector(settings, stream))
    stream_figures = {name for name in names(text) if name.startswith("tickflow_stream_")}
    assert stream_figures == {
        "tickflow_stream_stall_threshold_seconds",
        "tickflow_stream_stopped_on_request",
        "tickflow_stream_dead_letter_records_total",
    }
    assert "tickflow_airflow_component_healthy" not in names(text)  # Airflow not answering: no component series


def test_a_stream_stopped_on_request_says_so(settings: Settings, stream: StreamSettings) -> None:
    desired = settings.root / "apps" / "enrichment-stream" / "desired.json"  # what `tickflow stream stop` leaves
    desired.parent.mkdir(parents=True)
    desired.write_text(json.dumps({"stopped_at": NOW - 60}))
    assert value(scrape(collector(settings, stream)), "tickflow_stream_stopped_on_request") == 1


def test_dead_letters_count_from_the_topics_end_once_it_exists() -> None:
    reader = FakeDeadLetters(None, [])
    tally = DeadLetterTally(reader, "md.dlq")
    tally.step(0.1)
    assert not tally.assigned  # no md.dlq yet: asked again later
    reader.partitions = 3
    tally.step(0.1)
    assert [(tp.topic, tp.partition, tp.offset) for tp in reader.assignment] == [
        ("md.dlq", 0, OFFSET_END),
        ("md.dlq", 1, OFFSET_END),
        ("md.dlq", 2, OFFSET_END),
    ]
    reader.arriving = [
        FakeMessage("md.dlq", 0, reason="unknown schema id 7"),
        FakeMessage("md.dlq", 1, reason="unknown schema id 9"),
        FakeMessage("md.dlq", 2, reason="bid 2.0 above ask 1.0 beyond the 0.00% tolerance"),
        FakeMessage("md.dlq", 2),  # no reason header
        FakeMessage("md.dlq", 2, error=KafkaError(KafkaError._PARTITION_EOF)),
    ]
    tally.step(0.1)
    counts = tally.counts()
    assert (counts["unknown_schema_id"], counts["crossed_quote"], counts["other"]) == (2, 1, 1)
    assert sum(counts.values()) == 4


def test_in_secured_mode_the_exposition_asks_for_the_login() -> None:
    from tickflow.monitoring.exporter import requiring_login

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"tickflow_exporter_kafka_up 1\n"]

    guarded = requiring_login(app, ("prometheus", "s3cret"))
    statuses: list[str] = []

    def call(authorization: str | None) -> bytes:
        environ = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
        return b"".join(guarded(environ, lambda status, headers: statuses.append(status)))

    import base64

    assert b"metrics login" in call(None)
    assert b"metrics login" in call("Basic " + base64.b64encode(b"prometheus:wrong").decode())
    assert call("Basic " + base64.b64encode(b"prometheus:s3cret").decode()) == b"tickflow_exporter_kafka_up 1\n"
    assert statuses == ["401 Unauthorized", "401 Unauthorized", "200 OK"]
