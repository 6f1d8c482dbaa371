"""tickflow-exporter: the figures no single component reports, gathered each time Prometheus scrapes.

- **Consumer-group lag per stage**: the stream's group on md.events (``stage="stream"``) and the HBase sink's
  Connect group on md.enriched (``stage="hbase_sink"``). In records: the last stable offset minus the group's
  committed offset. Both topics are written in transactions, so the high watermark would count open transactions
  as lag; the last stable offset is the end a read_committed reader can reach. In seconds: the age of the oldest
  record the group has not consumed, read by a consumer of the health group, which never commits. That reader also
  tells a partition with only transaction markers left (an offset each) from one with records: the first counts as
  caught up. When Kafka does not answer, ``tickflow_exporter_kafka_up`` is 0 and there is no lag series, so the lag
  alerts stay quiet instead of firing on numbers that are not there.
- **The stream's figures** from its progress file, which outlives the stream: the "no micro-batch" alert needs
  exactly that. Its counters restart from 0 with the stream; ``rate()`` takes that as a reset.
- **Dead letters by reason**: a consumer at md.dlq's end since the exporter started counts each record by the code
  of its ``reason`` header (``tickflow.monitoring.reasons``).
- **Probes**: the stack's services without a metrics endpoint (a TCP connect), Airflow's own health report, the
  state directory's free space.

Prometheus scrapes every 10 s with a 5 s timeout, so Kafka gets ``KAFKA_BUDGET_S`` and Airflow
``AIRFLOW_TIMEOUT_S``, 3 s together. The stack runs it as ``python -m tickflow.monitoring.exporter`` until SIGTERM;
docs/operations.md lists every metric and alert. The figures themselves are built in ``families`` and ``lag``.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tickflow.appctl import AppControl
from tickflow.kafka_auth import HEALTH_GROUP, Principal, kafka_client_config
from tickflow.monitoring import families
from tickflow.monitoring.lag import PartitionOffsets, Stage, TopicLag, record_age_s, topic_lags, watched_stages
from tickflow.monitoring.reasons import REASON_CODES, reason_code
from tickflow.processes import port_in_use
from tickflow.runtime.paths import StatePaths
from tickflow.runtime.scrape import metrics_login
from tickflow.settings import Settings, explain_invalid
from tickflow.sinks.hbase import HBaseSinkSettings
from tickflow.sources.trades_connector import TradesSourceSettings
from tickflow.stream.control import APP_NAME
from tickflow.stream.progress import StreamProgress
from tickflow.stream.settings import StreamSettings

log = logging.getLogger("tickflow.monitoring.exporter")  # not "__main__" when run with -m

KAFKA_BUDGET_S = 2.0  # the offsets and the oldest records' times together
AIRFLOW_TIMEOUT_S = 1.0
# In secured mode the exporter logs in as its own principal (tickflow.stack.kafka_acls lists what that allows).
PRINCIPAL = Principal.MONITOR


def probed_services(settings: Settings) -> dict[str, int]:
    """The stack's services without a metrics endpoint of their own, by port: a closed port is all there is to see."""
    ports = settings.ports
    return {
        "registry": ports.registry,  # its management endpoint is not scraped (docs/operations.md)
        "hbase-thrift": ports.hbase_thrift,
        "metastore": ports.metastore,
        "thriftserver": ports.thriftserver,
        "airflow": ports.airflow,
    }


# -- Kafka -----------------------------------------------------------------------------------------------------
# ``admin`` is a confluent_kafka AdminClient, ``reader`` a confluent_kafka Consumer (or the tests' fakes).


def read_offsets(admin: Any, stages: Sequence[Stage], deadline: float) -> dict[Stage, list[PartitionOffsets]]:
    """Each stage's partitions with their earliest, last stable and committed offsets; raises KafkaException or
    TimeoutError when Kafka does not answer by ``deadline`` (``time.monotonic()``)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaException, TopicPartition

    # confluent_kafka.admin imports OffsetSpec without re-exporting it (no __all__), which strict mypy refuses.
    from confluent_kafka.admin._listoffsets import OffsetSpec

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    topics = admin.list_topics(timeout=left()).topics
    # A topic not created yet has nothing to lag behind.
    partitions = {stage: sorted(topics[stage.topic].partitions) for stage in stages if stage.topic in topics}
    wanted = sorted({(stage.topic, p) for stage, numbers in partitions.items() for p in numbers})
    if not wanted:
        return {}
    committed_futures = {
        stage: admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(stage.group, [TopicPartition(stage.topic, p) for p in numbers])],
            request_timeout=left(),
        )[stage.group]
        for stage, numbers in partitions.items()
    }
    latest, earliest = OffsetSpec.latest(), OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    stable_futures = admin.list_offsets(
        {TopicPartition(t, p): latest for t, p in wanted},
        isolation_level=IsolationLevel.READ_COMMITTED,
        request_timeout=left(),
    )
    earliest_futures = admin.list_offsets({TopicPartition(t, p): earliest for t, p in wanted}, request_timeout=left())
    stable = {(tp.topic, tp.partition): future.result(left()).offset for tp, future in stable_futures.items()}
    first = {(tp.topic, tp.partition): future.result(left()).offset for tp, future in earliest_futures.items()}
    offsets = {}
    for stage, future in committed_futures.items():
        committed = {}
        for tp in future.result(left()).topic_partitions:
            if tp.error is not None:
                raise KafkaException(tp.error)
            committed[tp.partition] = tp.offset if tp.offset >= 0 else None
        offsets[stage] = [
            PartitionOffsets(stage.topic, p, first[(stage.topic, p)], stable[(stage.topic, p)], committed.get(p))
            for p in partitions[stage]
        ]
    return offsets


def oldest_record_ages(
    reader: Any, starts: Mapping[tuple[str, int], int], now_s: float, timeout_s: float
) -> dict[tuple[str, int], float | None]:
    """How old the first committed record at or after each start offset is, by (topic, partition), for those read
    within ``timeout_s``; None where there is nothing committed to read (only transaction markers or aborted
    records before the last stable offset: the reader reaches the partition's end at once)."""
    from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, TopicPartition

    if not starts:
        return {}
    pending = set(starts)
    ages: dict[tuple[str, int], float | None] = {}
    deadline = time.monotonic() + timeout_s
    reader.incremental_assign([TopicPartition(topic, p, offset) for (topic, p), offset in starts.items()])
    try:
        while pending and (left := deadline - time.monotonic()) > 0:
            message = reader.poll(min(left, 0.2))
            if message is None or (key := (message.topic(), message.partition())) not in pending:
                continue
            error = message.error()
            if error is None:
                kind, timestamp = message.timestamp()
                if kind != TIMESTAMP_NOT_AVAILABLE:
                    ages[key] = record_age_s(now_s, timestamp)
            elif error.code() == KafkaError._PARTITION_EOF:
                ages[key] = None
            else:
                continue
            pending.discard(key)
            reader.incremental_unassign([TopicPartition(*key)])  # its further records are of no use
    finally:
        if pending:
            reader.incremental_unassign([TopicPartition(topic, p) for topic, p in pending])
    return ages


class KafkaLag:
    """The stages' lag: offsets through the admin client, the oldest records' times through ``reader`` (a
    read_committed consumer of the health group, which never commits)."""

    def __init__(
        self,
        admin: Any,
        reader: Any,
        stages: Sequence[Stage],
        budget_s: float = KAFKA_BUDGET_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.admin = admin
        self.reader = reader
        self.stages = stages
        self.budget_s = budget_s
        self.clock = clock

    def read(self) -> list[TopicLag]:
        """Raises KafkaException or TimeoutError when Kafka does not answer the offset queries in time; a record
        time not read in time only leaves its topic's lag in seconds out."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + self.budget_s
        offsets = read_offsets(self.admin, self.stages, deadline)
        starts = {(p.topic, p.partition): p.next_offset for ps in offsets.values() for p in ps if p.lag > 0}
        try:
            ages = oldest_record_ages(self.reader, starts, self.clock(), max(0.0, deadline - time.monotonic()))
        except KafkaException as error:
            log.warning("reading the oldest unconsumed records failed: %s", error)
            ages = {}
        return [lag for stage, partitions in offsets.items() for lag in topic_lags(stage, partitions, ages)]


class DeadLetterTally:
    """md.dlq's records by reason code since the exporter started. ``reader`` starts at the topic's end, reads
    committed records only (the stream writes its dead letters in its transactions) and never commits."""

    def __init__(self, reader: Any, topic: str) -> None:
        self.reader = reader
        self.topic = topic
        self.assigned = False
        self.lock = threading.Lock()
        self._counts = dict.fromkeys(REASON_CODES, 0)  # every code from 0, so rate() sees the first of each

    def counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self._counts)

    def step(self, timeout_s: float) -> None:
        """Start at the topic's end if not there yet (the topic may not exist yet), else count what arrived."""
        from confluent_kafka import OFFSET_END, TopicPartition

        if not self.assigned:
            topic = self.reader.list_topics(self.topic, timeout=timeout_s).topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                return
            self.reader.assign([TopicPartition(self.topic, p, OFFSET_END) for p in sorted(topic.partitions)])
            self.assigned = True
            log.info("counting the dead letters of %s from its end", self.topic)
            return
        messages = self.reader.consume(1000, timeout_s)
        codes = [reason_code(reason_of(m.headers())) for m in messages if m.error() is None]
        with self.lock:
            for code in codes:
                self._counts[code] += 1

    def run(self, stopping: threading.Event) -> None:
        from confluent_kafka import KafkaException

        failing = False
        while not stopping.is_set():
            try:
                self.step(1.0)
            except KafkaException as error:
                if not failing:  # once, not every few seconds while Kafka is down
                    log.warning("reading %s failed: %s", self.topic, error)
                failing = True
                stopping.wait(5.0)
                continue
            failing = False
            if not self.assigned:
                stopping.wait(5.0)


def reason_of(headers: Sequence[tuple[str, bytes | None]] | None) -> str | None:
    """A dead letter's ``reason`` header (jvm/stream ``DeadLetters`` writes it), None when it has none."""
    for key, value in headers or ():
        if key == "reason" and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


# -- the collector ---------------------------------------------------------------------------------------------


def airflow_health(settings: Settings) -> Mapping[str, Any] | None:
    """Airflow's monitor endpoint (it needs no login); None when Airflow does not answer."""
    import httpx

    try:
        response = httpx.get(f"{settings.airflow_url}/api/v2/monitor/health", timeout=AIRFLOW_TIMEOUT_S)
        response.raise_for_status()
        health: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return health


class TickflowCollector(Collector):
    """Everything, gathered at each scrape, one scrape at a time (the Kafka reader is not for two at once)."""

    def __init__(
        self,
        settings: Settings,
        stream: StreamSettings,
        sink: HBaseSinkSettings,
        kafka: KafkaLag,
        dead_letters: DeadLetterTally,
        airflow: Callable[[], Mapping[str, Any] | None],
        listening: Callable[[str, int], bool] = port_in_use,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.sink = sink
        self.kafka = kafka
        self.dead_letters = dead_letters
        self.airflow = airflow
        self.listening = listening
        self.app = AppControl(APP_NAME, settings.root)
        self.connectors = {sink.name: "hbase_sink", TradesSourceSettings().name: "trades_source"}
        self.lock = threading.Lock()
        self.kafka_answered: bool | None = None

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            started = time.monotonic()
            health = self.airflow()
            gathered = [
                *families.lag_families(self._lags()),
                *families.stream_families(StreamProgress.read(self.stream.progress(self.settings))),
                *families.threshold_families(
                    self.stream.stall_after_s, self.sink.lag_alert_after_s, self.app.stopped_on_request() is not None
                ),
                families.dead_letter_family(self.dead_letters.counts()),
                families.connector_stage_family(self.connectors),
                families.listening_family(self._probes()),
                *([] if health is None else [families.airflow_family(health)]),  # else the port probe tells
                *self._filesystem(),
                families.collect_duration_family(time.monotonic() - started),
            ]
        yield from gathered

    def _lags(self) -> list[TopicLag] | None:
        from confluent_kafka import KafkaException

        lags: list[TopicLag] | None
        try:
            lags = self.kafka.read()
        except (KafkaException, TimeoutError) as error:
            if self.kafka_answered is not False:
                log.warning("Kafka at %s does not answer: %s", self.settings.bootstrap_servers, error or "timed out")
            lags = None
        if lags is not None and self.kafka_answered is False:
            log.info("Kafka at %s answers again", self.settings.bootstrap_servers)
        self.kafka_answered = lags is not None
        return lags

    def _probes(self) -> list[tuple[str, str, bool]]:
        """Only the services the stack started and did not stop (their pid files): one stopped on purpose is not
        down."""
        paths, host = StatePaths(self.settings.root), self.settings.host
        return [
            (service, f"{host}:{port}", self.listening(host, port))
            for service, port in probed_services(self.settings).items()
            if paths.pidfile(service).exists()
        ]

    def _filesystem(self) -> list[Metric]:
        try:
            return families.filesystem_families(os.statvfs(self.settings.root))
        except OSError:  # no state directory yet
            return []


# -- the process -----------------------------------------------------------------------------------------------


def build(settings: Settings, stream: StreamSettings, sink: HBaseSinkSettings) -> tuple[TickflowCollector, list[Any]]:
    """The collector on real Kafka clients, and the clients to close at the end."""
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient

    # librdkafka's own log off: while Kafka is down it would repeat every second what ours says once.
    client: dict[str, Any] = {**kafka_client_config(settings, PRINCIPAL), "log_level": 0}
    reader = {
        **client,
        "group.id": HEALTH_GROUP,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",  # a committed offset retention deleted: the group reads on from the earliest
    }
    # One record per partition is all it reads: a short wait at a partition's end, no large fetches.
    records = Consumer(
        {**reader, "enable.partition.eof": True, "fetch.wait.max.ms": 100, "fetch.message.max.bytes": 64 * 1024}
    )
    dead_letters = Consumer(reader)
    collector = TickflowCollector(
        settings,
        stream,
        sink,
        KafkaLag(AdminClient(client), records, watched_stages(stream, sink)),
        DeadLetterTally(dead_letters, stream.dlq_topic),
        lambda: airflow_health(settings),
    )
    return collector, [records, dead_letters]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def requiring_login(app: Any, login: tuple[str, str]) -> Any:
    """``app`` behind HTTP basic authentication with ``login`` (secured mode's metrics login)."""
    expected = "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if hmac.compare_digest(environ.get("HTTP_AUTHORIZATION", "").encode(), expected.encode()):
            return app(environ, start_response)
        headers = [("WWW-Authenticate", 'Basic realm="tickflow metrics"'), ("Content-Type", "text/plain")]
        start_response("401 Unauthorized", headers)
        return [b"tickflow-exporter asks for the metrics login (docs/operations.md, secured mode).\n"]

    return guarded


def serve(registry: CollectorRegistry, host: str, port: int, login: tuple[str, str] | None) -> WSGIServer:
    """/metrics of ``registry`` on host:port in a thread, behind ``login`` when there is one."""
    app = make_wsgi_app(registry)
    server = make_server(host, port, app if login is None else requiring_login(app, login), _Server, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def main() -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request to Airflow otherwise
    try:
        settings, stream, sink = Settings(), StreamSettings(), HBaseSinkSettings()
    except (ValidationError, SettingsError) as error:
        print(f"tickflow-exporter: {explain_invalid(error) or error}", file=sys.stderr)
        return 1
    collector, clients = build(settings, stream, sink)
    registry = CollectorRegistry()
    registry.register(collector)
    host, port = settings.host, settings.ports.tickflow_exporter
    try:
        server = serve(registry, host, port, metrics_login(settings))
    except OSError as error:
        print(f"tickflow-exporter: cannot listen on {host}:{port} ({error}): stop what listens there.", file=sys.stderr)
        return 1
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stopping.set())
    tally = threading.Thread(target=collector.dead_letters.run, args=(stopping,), name="dead-letters", daemon=True)
    tally.start()
    log.info("serving http://%s:%d/metrics (Kafka at %s)", host, port, settings.bootstrap_servers)
    stopping.wait()
    server.shutdown()
    server.server_close()
    tally.join(timeout=5)
    for client in clients:
        client.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
