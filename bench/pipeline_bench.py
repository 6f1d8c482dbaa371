"""The whole path, simulator to web page, in one run with the whole stack up: what a person at the page sees
and where the two cores go, then each stage beside its ceiling.

  1. path: the live platform as it runs: the enrichment stream on md.events (`tickflow stream start`, or the
     copy already running), the HBase sink on md.enriched (`tickflow connect deploy`), the serving API
     (`tickflow serve`, a subprocess on a free port) and the simulator (`tickflow simulate`, a process of its
     own) as the only load. First 2,000/s for 20 s (no figure holds a component's first batches), then 15 s
     with nothing offered (the cores each component keeps busy idle); then each of RATES events/s for SECONDS,
     the first WARMUP seconds of each left out of the latencies. Per rate:
       - offered against achieved produce rate (md.events end offsets before and after, over --duration);
       - freshness as the page sees it: the simulator's 20 most active instruments polled twice a second
         through GET /api/latest; freshness = time of the answer minus the newest as-of it shows for an
         instrument (so it includes the time since that instrument's last event);
       - per stage, p50/p99: produce -> md.enriched (the record's Kafka timestamp minus its ingest_time, the
         md.events record's Kafka timestamp; every Nth record, ~200 a second) and md.enriched -> md:latest
         (md:latest of the 20 instruments read every 100 ms through the Thrift server: when a row's
         event_time changes, the time it was first seen minus the md.enriched Kafka timestamp of the record
         carrying that instrument and event_time; 0-100 ms of it is the poll);
       - lag of the stream's consumer group (tickflow-enrichment, committed after every micro-batch) and of
         the sink's (connect-<connector>, committed every 5 s), sampled every second. Both lags are
         saw-tooths, so the slope over the window's second half is fitted to their floor (each sample
         replaced by the least lag of the 10 s up to it). Held: every slope < 2% of the rate and every lag
         below a tenth of a second of the offer within 10 s after the offer stops (the sink: 10 s + its
         5 s commit interval);
       - CPU seconds per 1,000 events of every component (process trees from /proc: the stream's JVM and,
         apart, its Python driver and workers; Connect, HBase, its Thrift server, Kafka, the registry, the
         simulator, the serving API, Airflow's four processes, PostgreSQL, the metastore, the Thrift server,
         this process's pollers) and the machine's total (/proc/stat), from the offer's start until the lags
         were caught up; "other" is the machine's total minus the components', its busiest processes named
         (on a shared machine, somebody else's).
     Stops at the first rate that is not held (unless --all-rates).
  2. stream-ceiling: the stream against Spark's pass-through on one fresh BACKLOG-event topic
     (stream_bench.drain_ceiling, drain_stream) -> ratio.
  3. sink-ceiling: the sink against HBase's own client (SINK_BACKLOG EnrichedEvents of hbase_sink_bench,
     drained by a per-run connector) writing a subset of the same cells: every md:history Put, as the sink's,
     and each instrument's final md:latest row (the sink writes one per conflation interval, as many as its
     timing makes). PutCeiling (connectors/hbase-sink/src/test/java): a connection per sink task, a
     BufferedMutator per table fed by a thread of its own (as the task thread and the sink's timer feed them),
     the deploy's write buffer and periodic flush, WAL as the tables say, a quarter untimed to warm its JVM.
     HBase's memstores are flushed and HBase idle before each contender -> ratio.

    .venv/bin/python -m bench.pipeline_bench [--rates 5000,20000,30000,40000] [--seconds 60]
        [--warmup 5] [--prime 20] [--backlog 1000000] [--sink-backlog 200000] [--all-rates]
        [--skip path,stream-ceiling,sink-ceiling] [--plot docs/pipeline.png]

Needs the stack up with topics, schemas, reference data (refreshed into Hive) and the sink plugin. Prints the
figures on stdout, the last line all of them as JSON; progress on stderr. Leaves the stream as it found it
(stops it only if it started it) and the sink deployed; removes its topics and its per-run instruments'
md:latest rows (XBENCH:<run>-<n>, whose md:history rows expire with the TTL)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import happybase
import httpx
import numpy as np
import psutil
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

from bench import hbase_sink_bench, stream_bench
from bench.common import PARTITIONS, admin_client, consumer, fresh_topics, percentile
from bench.serving_bench import free_port
from bench.stream_bench import simulator, slope, tree_cpu_seconds
from tickflow.hbase.layout import HISTORY, HISTORY_COLUMN, LATEST, event_layout, history_cells
from tickflow.hbase.store import MarketDataStore
from tickflow.kafka_auth import HEALTH_GROUP
from tickflow.runtime.tooling import find_java, run_mvn
from tickflow.settings import Settings
from tickflow.sinks.hbase import HBaseSinkSettings, deploy
from tickflow.sources.feed import FeedConfig
from tickflow.sources.simulator import MarketState
from tickflow.sources.universe import build_universe
from tickflow.stack import supervisor
from tickflow.stream.control import EnrichmentStream, Verdict
from tickflow.stream.settings import StreamSettings

SECTIONS = ("path", "stream-ceiling", "sink-ceiling")
SAMPLED = 20  # instruments the "page" selects
API_POLL_S, LATEST_POLL_S, LAG_EVERY_S = 0.5, 0.1, 1.0
LATENCY_SAMPLES_PER_S = 200  # produce -> md.enriched: records decoded per second of offer
FLAT = 0.02  # a lag is flat when it grows less than this fraction of the rate per second
CATCH_UP_S = 10.0
CONNECT_COMMIT_S = 5.0  # offset.flush.interval.ms of the stack's Connect worker (tickflow.stack.connect)
FLOOR_S = 2 * CONNECT_COMMIT_S  # lags are saw-tooths (per batch, per commit): slopes are fitted to their floor
CATCH_UP_WAIT_S = 60.0  # how long to watch the lags after the offer stops (beyond CATCH_UP_S: to say how long)
# Before the first rate: every component has run batches (first fetches). The stream's JVM compiles Spark's
# per-batch driver code for minutes (docs/performance.md): --prime 600 measures it warm.
PRIME_RATE, PRIME_S = 2000, 20
IDLE_S = 15  # then, with no offer: what each component costs doing nothing
SETTLE_TIMEOUT_S = 900.0
PUT_CEILING = "io.tickflow.connect.hbase.PutCeiling"
# Components and the stack services (tickflow.stack.services, by name or group) whose process trees they are. In
# the cluster profile the stream's executors run in the Spark workers' trees ("stream executors"), its driver
# where the local stream runs ("stream JVM").
STACK_COMPONENTS = {
    "stream executors": {"spark-worker"}, "connect": {"connect"}, "hbase": {"hbase"}, "hbase thrift": {"hbase-thrift"},
    "kafka": {"kafka"}, "registry": {"registry"}, "airflow": {"airflow", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer"}, "postgres": {"postgres"}, "metastore": {"metastore"}, "thrift server": {"thriftserver"},
    "hdfs": {"hdfs"}, "spark master": {"spark-master"},
    "monitoring": {"prometheus", "tickflow-exporter", "postgres-exporter"},
}  # fmt: skip
COMPONENTS = ("stream JVM", "stream Python", *STACK_COMPONENTS, "simulator", "serving API", "bench pollers")


def note(message: str) -> None:
    """Progress, on stderr (stdout is for the figures)."""
    print(message, file=sys.stderr, flush=True)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tickflow.cli", *args]


# ---- results --------------------------------------------------------------------------------------------


@dataclass
class Percentiles:
    p50_ms: float
    p99_ms: float
    samples: int

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        return cls(percentile(values, 0.5), percentile(values, 0.99), len(values))

    def text(self) -> str:
        return f"p50 {self.p50_ms:,.0f} ms, p99 {self.p99_ms:,.0f} ms ({self.samples:,} samples)"


@dataclass
class Lag:
    label: str
    group: str
    topic: str
    slope_per_s: float  # of the floor, over the window's second half
    most: int
    caught_up_s: float | None  # after the offer stopped; None: not within CATCH_UP_WAIT_S
    held: bool


@dataclass
class RateResult:
    rate: int
    achieved: float
    produced: int
    window_s: float  # the CPU window: the offer and the catch-up after it
    freshness: Percentiles
    api_response: Percentiles
    to_enriched: Percentiles
    to_latest: Percentiles
    lags: list[Lag]
    held: bool
    cpu_seconds: dict[str, float]
    cpu_per_1000: dict[str, float]
    outside: dict[str, float]  # CPU seconds of the busiest processes that are none of the components


@dataclass
class PathResult:
    idle_cores: dict[str, float]  # per component, with no offer
    idle_outside: dict[str, float]
    rates: list[RateResult]


@dataclass
class Ceiling:
    stage: str
    rate: float
    ceiling_rate: float
    ratio: float
    details: dict[str, Any] = field(default_factory=dict)


# ---- where the cores go -----------------------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tree_seconds(pid: int | None) -> float:
    try:
        return tree_cpu_seconds(pid) if pid else 0.0
    except psutil.NoSuchProcess:
        return 0.0


def tree_pids(pid: int | None) -> set[int]:
    try:
        root = psutil.Process(pid) if pid else None
        return {root.pid, *(p.pid for p in root.children(recursive=True))} if root else set()
    except psutil.NoSuchProcess:
        return set()


def own_seconds() -> dict[tuple[int, float], tuple[str, float]]:
    """Every process's own CPU seconds (not its children's), by (pid, start time), with a label: pid, name and
    the last argument that is not an option."""
    found = {}
    for process in psutil.process_iter(["name", "cmdline", "create_time", "cpu_times"]):
        info = process.info
        if info["cpu_times"] is None or info["create_time"] is None:
            continue
        arguments = [a for a in (info["cmdline"] or [])[1:] if not a.startswith("-")]
        label = f"{process.pid} {info['name']} {Path(arguments[-1]).name[:40] if arguments else ''}".strip()
        found[(process.pid, info["create_time"])] = (label, info["cpu_times"].user + info["cpu_times"].system)
    return found


@dataclass
class Reading:
    seconds: dict[str, float]  # per component, and the machine's
    processes: dict[tuple[int, float], tuple[str, float]]  # every process's own seconds (own_seconds)
    attributed: set[int]  # the pids of the components


class CpuMeter:
    """CPU seconds so far of every component: stack services by their pid files, the stream by its app record
    (its JVM apart from the Python driver and workers under it), the serving API's process, the simulator as this
    process's reaped children (it is the only child that exits during a window), this process's own threads;
    and of every other process, to name what "other" (the machine's total minus the components) is."""

    def __init__(self, settings: Settings, serving_pid: int) -> None:
        stack = supervisor(settings)
        self.roots = {label: [p for s in stack.services.values() if names & {s.name, s.group}
                              if (p := stack.running_pid(s.name))]
                      for label, names in STACK_COMPONENTS.items()}  # fmt: skip
        self.roots["serving API"] = [serving_pid]
        record = EnrichmentStream(settings).control.running()
        self.stream_leader = record.pid if record else None
        self.stream_jvm = self._jvm(self.stream_leader)

    @staticmethod
    def _jvm(leader: int | None) -> psutil.Process | None:
        if leader is None:
            return None
        root = psutil.Process(leader)
        return next((p for p in [root, *root.children(recursive=True)] if p.name() == "java"), None)

    def read(self) -> Reading:
        seconds = {label: sum(tree_seconds(pid) for pid in pids) for label, pids in self.roots.items()}
        jvm = 0.0
        if self.stream_jvm is not None:
            try:
                jvm = sum(self.stream_jvm.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        seconds["stream JVM"] = jvm
        seconds["stream Python"] = tree_seconds(self.stream_leader) - jvm
        me = psutil.Process().cpu_times()
        seconds["simulator"] = me.children_user + me.children_system
        seconds["bench pollers"] = me.user + me.system
        seconds["machine"] = machine_busy_seconds()
        roots = [pid for pids in self.roots.values() for pid in pids] + [self.stream_leader, os.getpid()]
        attributed = set().union(*(tree_pids(pid) for pid in roots))
        return Reading(seconds, own_seconds(), attributed)


def cpu_used(before: Reading, after: Reading) -> dict[str, float]:
    used = {name: after.seconds[name] - before.seconds[name] for name in (*COMPONENTS, "machine")}
    used["other"] = used["machine"] - sum(used[name] for name in COMPONENTS)
    return used


def outside(before: Reading, after: Reading, top: int = 5) -> dict[str, float]:
    """The processes outside the components that used the most CPU seconds between the readings."""
    used = {label: seconds - before.processes.get(key, (label, 0.0))[1]
            for key, (label, seconds) in after.processes.items() if key[0] not in after.attributed}  # fmt: skip
    return dict(sorted(used.items(), key=lambda item: -item[1])[:top])


# ---- what watches the path ----------------------------------------------------------------------------


class Every(threading.Thread):
    """Runs ``action`` every ``seconds`` until stopped; failures are counted and the first is reported."""

    def __init__(self, name: str, seconds: float, action: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.seconds, self.action = seconds, action
        self.halt = threading.Event()
        self.errors = 0

    def run(self) -> None:
        due = time.monotonic()
        while not self.halt.is_set():
            try:
                self.action()
            except Exception as error:  # noqa: BLE001 - a failed poll is a gap in the samples, reported once
                self.errors += 1
                if self.errors == 1:
                    note(f"  {self.name}: {error!r} (further failures counted)")
            due += self.seconds
            self.halt.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


@dataclass(frozen=True)
class Group:
    label: str
    group: str
    topic: str
    commit_every_s: float  # besides its work, how long the group may wait before it commits what it did


def groups() -> list[Group]:
    stream, sink = StreamSettings(), HBaseSinkSettings()
    return [Group("stream", stream.consumer_group, stream.input_topic, 0.0),
            Group("sink", f"connect-{sink.name}", sink.topic, CONNECT_COMMIT_S)]  # fmt: skip


class Lags:
    """A consumer group's lag: the topic's end offsets minus the group's committed ones."""

    def __init__(self, settings: Settings) -> None:
        self.admin = admin_client(settings)
        self.partitions: dict[str, list[TopicPartition]] = {}

    def _partitions(self, topic: str) -> list[TopicPartition]:
        if topic not in self.partitions:
            found = self.admin.list_topics(topic, timeout=10).topics[topic].partitions
            self.partitions[topic] = [TopicPartition(topic, p) for p in sorted(found)]
        return self.partitions[topic]

    def of(self, group: Group) -> int:
        partitions = self._partitions(group.topic)
        request = [ConsumerGroupTopicPartitions(group.group, partitions)]
        committed = self.admin.list_consumer_group_offsets(request)[group.group].result(10)
        done = {tp.partition: max(tp.offset, 0) for tp in committed.topic_partitions}
        ends = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions})  # type: ignore[no-untyped-call]
        return sum(max(future.result(10).offset - done.get(tp.partition, 0), 0) for tp, future in ends.items())


def end_offset_total(settings: Settings, topic: str) -> int:
    return sum(stream_bench.end_offsets(settings, topic).values())


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def event_time_us(value: bytes) -> int:
    """event_time of a Confluent-framed EnrichedEvent without decoding the rest: instrument_id and event_time
    are its first two fields (schemas/tickflow.md.EnrichedEvent.avsc)."""
    length, pos = _varint(value, 5)
    return _varint(value, pos + length)[0]


class EnrichedTap(threading.Thread):
    """md.enriched from its end offsets on: the produce -> md.enriched latency of every ``every``-th record
    (Kafka timestamp minus ingest_time, decoded with the registry), and the Kafka timestamp of every record of
    the sampled instruments by (instrument, event_time), told by the key without decoding the record."""

    def __init__(self, settings: Settings, topic: str, instruments: list[str], every: int) -> None:
        super().__init__(name="md.enriched tap", daemon=True)
        self.consumer = consumer(settings, f"bench-pipeline-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False})
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions]
        self.consumer.assign([TopicPartition(topic, p, end) for p, end in zip(partitions, ends, strict=True)])
        self.deserialize = AvroDeserializer(SchemaRegistryClient(settings.registry_client_config))
        self.keys = {i.encode() for i in instruments}
        self.every = every
        self.published: dict[tuple[str, int], int] = {}  # (instrument, event_time µs) -> Kafka timestamp (ms)
        self.latencies: list[tuple[float, float]] = []  # (ingest time ms, produce -> md.enriched ms)
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            while True:
                batch = self.consumer.consume(10_000, 0.2)
                if not batch and self.halt.is_set():
                    return
                for message in batch:
                    value = message.value()
                    if message.error() is not None or not value:
                        continue
                    stamp = message.timestamp()[1]
                    if (key := message.key()) in self.keys:
                        self.published.setdefault((key.decode(), event_time_us(value)), stamp)
                    if (message.offset() or 0) % self.every == 0:
                        ingest = self.deserialize(value, None)["ingest_time"].timestamp() * 1000
                        self.latencies.append((ingest, stamp - ingest))
        finally:
            self.consumer.close()

    def stop(self) -> None:
        """Stops once a read finds nothing more (the stream has published everything by then)."""
        self.halt.set()
        self.join(60)


class Watch:
    """Everything that watches one rate's window: the page's poll, md:latest, md.enriched and the lags."""

    def __init__(self, settings: Settings, url: str, instruments: list[str], rate: int) -> None:
        self.instruments, self.groups = instruments, groups()
        self.api = httpx.Client(base_url=url, timeout=10)
        self.store = MarketDataStore(settings, pool_size=1)
        self.lag_reader = Lags(settings)
        self.tap = EnrichedTap(settings, HBaseSinkSettings().topic, instruments, max(1, rate // LATENCY_SAMPLES_PER_S))
        self.freshness: list[tuple[float, float]] = []  # (answered, ms): times are wall-clock ms
        self.api_ms: list[tuple[float, float]] = []
        self.seen: dict[str, int] = {}
        self.changes: list[tuple[str, int, float]] = []  # (instrument, new event_time µs, first seen)
        self.lags: dict[str, list[tuple[float, int]]] = {g.label: [] for g in self.groups}
        self.pollers = [Every("GET /api/latest", API_POLL_S, self.poll_api),
                        Every("md:latest", LATEST_POLL_S, self.poll_latest),
                        Every("lags", LAG_EVERY_S, self.sample_lags)]  # fmt: skip

    def start(self) -> None:
        self.poll_latest()  # the rows as they are: only changes from here on are samples
        self.changes.clear()
        self.tap.start()
        for poller in self.pollers:
            poller.start()

    def poll_api(self) -> None:
        asked = time.time() * 1000
        answer = self.api.get("/api/latest", params={"ids": ",".join(self.instruments)})
        answered = time.time() * 1000
        answer.raise_for_status()
        self.api_ms.append((answered, answered - asked))
        for row in answer.json()["instruments"]:
            newest = max((cell["as_of"] for cell in row["fields"].values()), default=None)
            if newest is not None:
                self.freshness.append((answered, answered - newest))

    def poll_latest(self) -> None:
        found = self.store.latest(self.instruments)
        now = time.time() * 1000
        for instrument, latest in found.items():
            event_time = latest.values.get("event_time")
            if event_time is not None and self.seen.get(instrument) != event_time:
                self.seen[instrument] = event_time
                self.changes.append((instrument, event_time, now))

    def sample_lags(self) -> None:
        now = time.time() * 1000
        for group in self.groups:
            self.lags[group.label].append((now, self.lag_reader.of(group)))

    def wait_caught_up(self, stopped: float, rate: int) -> None:
        """Until every lag was below a tenth of a second of the offer after ``stopped`` (or CATCH_UP_WAIT_S)."""
        while time.time() * 1000 < stopped + CATCH_UP_WAIT_S * 1000:
            if all(caught_up_s(self.lags[g.label], stopped, rate) is not None for g in self.groups):
                return
            time.sleep(0.5)

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()
        self.tap.stop()
        self.api.close()


def caught_up_s(samples: list[tuple[float, int]], stopped: float, rate: int) -> float | None:
    return next(((t - stopped) / 1000 for t, lag in samples if t >= stopped and lag <= rate / 10), None)


def floor_slope(samples: list[tuple[float, int]], since: float, until: float) -> float:
    """Per-second slope of the lag's floor (the least lag of the FLOOR_S up to each sample) in [since, until]."""

    def floor_at(t: float) -> float:
        return min(lag for t2, lag in samples if t - FLOOR_S * 1000 < t2 <= t)

    return slope([((t - since) / 1000, floor_at(t)) for t, _ in samples if since <= t <= until])


# ---- the live platform ----------------------------------------------------------------------------------


@contextmanager
def live_stream(settings: Settings) -> Iterator[None]:
    """The managed stream: the running copy, or one started as the platform does (stopped again at the end)."""
    stream = EnrichmentStream(settings)
    started = stream.control.running() is None
    if started:
        note("starting the enrichment stream (tickflow stream start)")
        subprocess.run(cli("stream", "start"), check=True, stdout=subprocess.DEVNULL)
    else:
        note("the enrichment stream runs already: measuring that copy")
    try:
        wait_healthy(settings, stream)
        yield
    finally:
        if started:
            note("stopping the enrichment stream this bench started (tickflow stream stop)")
            subprocess.run(cli("stream", "stop"), check=False, stdout=subprocess.DEVNULL)


def wait_healthy(settings: Settings, stream: EnrichmentStream, timeout_s: float = 600.0) -> None:
    checks = consumer(settings, HEALTH_GROUP)
    deadline = time.monotonic() + timeout_s
    try:
        while (health := stream.health(checks)).verdict is not Verdict.HEALTHY:
            if health.verdict in (Verdict.DEAD, Verdict.STOPPED) or time.monotonic() > deadline:
                raise RuntimeError(f"{health.line()} (log: {stream.log_path})")
            time.sleep(2)
    finally:
        checks.close()
    note(f"  {health.line()}")


@contextmanager
def serving_api(settings: Settings) -> Iterator[tuple[str, int]]:
    """`tickflow serve` on a free port; yields its URL and pid. Its log is kept only when it did not start."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="tickflow-bench-serve-", suffix=".log")[1])
    env = {**os.environ, "TICKFLOW_PORT_SERVING": str(port)}
    with log.open("wb") as out:
        process = subprocess.Popen(cli("serve"), env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{settings.host}:{port}"
    try:
        deadline = time.monotonic() + 120
        while not answers(f"{url}/healthz"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tickflow serve did not answer on {url}: read {log}")
            time.sleep(0.5)
        note(f"serving API at {url} (pid {process.pid})")
        yield url, process.pid
        log.unlink()
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def most_active(count: int) -> list[str]:
    """The simulator's ``count`` most active instruments (its universe and activity weights are deterministic)."""
    feed = FeedConfig()
    universe = build_universe(feed.instruments, feed.seed)
    weights = MarketState(universe, feed.seed).weights
    return [universe[i].instrument_id for i in np.argsort(-weights)[:count]]


def settle(settings: Settings, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Wait until the stream and the sink have consumed what is on their topics."""
    reader, started, said = Lags(settings), time.monotonic(), 0.0
    while True:
        lags = {g.label: reader.of(g) for g in groups()}
        if all(lag <= 1000 for lag in lags.values()):
            return
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise RuntimeError(f"the path did not catch up within {timeout_s:.0f} s: lags {lags}")
        if waited - said >= 10:
            note(f"  waiting for the path to catch up: lags {lags}")
            said = waited
        time.sleep(1)


def prime(settings: Settings, url: str, instruments: list[str], seconds: int) -> None:
    """An offer before the measured ones, so that no measured window holds a component's first batch; then
    every sampled instrument must be on the page."""
    note(f"priming: {PRIME_RATE:,}/s for {seconds} s")
    with simulator(StreamSettings().input_topic, PRIME_RATE, seconds) as feed:
        feed.wait()
    settle(settings)
    answer = httpx.get(f"{url}/api/latest", params={"ids": ",".join(instruments)}, timeout=30)
    answer.raise_for_status()
    if missing := answer.json()["missing"]:
        raise RuntimeError(f"the page shows nothing for {missing} after priming: is the sink deployed and running?")


def run_rate(settings: Settings, url: str, instruments: list[str], meter: CpuMeter, rate: int,
             seconds: int, warmup_s: float) -> RateResult:  # fmt: skip
    settle(settings)
    topic = StreamSettings().input_topic
    before = end_offset_total(settings, topic)
    watch = Watch(settings, url, instruments, rate)
    watch.start()
    cpu = meter.read()
    started = time.time() * 1000
    note(f"offering {rate:,}/s for {seconds} s")
    with simulator(topic, rate, seconds) as feed:
        feed.wait()
    stopped = time.time() * 1000
    watch.wait_caught_up(stopped, rate)
    after = meter.read()
    used = cpu_used(cpu, after)
    window_s = (time.time() * 1000 - started) / 1000
    watch.stop()
    produced = end_offset_total(settings, topic) - before
    if produced <= 0:
        raise RuntimeError(f"the simulator produced nothing at {rate:,}/s")
    measured = started + warmup_s * 1000  # samples from here to `stopped` count
    lags = [lag_result(g, watch.lags[g.label], (started + stopped) / 2, stopped, rate) for g in watch.groups]
    return RateResult(
        rate=rate, achieved=produced / seconds, produced=produced, window_s=window_s,
        freshness=Percentiles.of([ms for t, ms in watch.freshness if measured <= t <= stopped]),
        api_response=Percentiles.of([ms for t, ms in watch.api_ms if measured <= t <= stopped]),
        to_enriched=Percentiles.of([ms for t, ms in watch.tap.latencies if measured <= t <= stopped]),
        to_latest=Percentiles.of(sink_latencies(watch, measured, stopped)),
        lags=lags, held=all(lag.held for lag in lags),
        cpu_seconds=used, cpu_per_1000={name: s / produced * 1000 for name, s in used.items()},
        outside=outside(cpu, after),
    )  # fmt: skip


def sink_latencies(watch: Watch, since: float, until: float) -> list[float]:
    """md.enriched -> md:latest: first seen in md:latest minus the md.enriched timestamp of the record seen, for
    events of the window (by event time: a path that falls behind shows them late, but shows them)."""
    found = ((seen, watch.tap.published.get((instrument, event_time)))
             for instrument, event_time, seen in watch.changes if since <= event_time / 1000 <= until)  # fmt: skip
    return [seen - published for seen, published in found if published is not None]


def lag_result(group: Group, samples: list[tuple[float, int]], since: float, stopped: float, rate: int) -> Lag:
    growth = floor_slope(samples, since, stopped)
    caught = caught_up_s(samples, stopped, rate)
    held = growth < FLAT * rate and caught is not None and caught <= CATCH_UP_S + group.commit_every_s
    most = max((lag for t, lag in samples if t <= stopped), default=0)
    return Lag(group.label, group.group, group.topic, growth, most, caught, held)


def print_rate(result: RateResult, idle: dict[str, float]) -> None:
    short = " (the simulator fell short of the offer)" if result.achieved < 0.95 * result.rate else ""
    print(f"rate {result.rate:,}/s offered: {result.achieved:,.0f}/s achieved ({result.produced:,} events){short}")
    print(f"  freshness at the page ({SAMPLED} instruments, GET /api/latest every {API_POLL_S} s): "
          f"{result.freshness.text()}; the API answered in {result.api_response.text()}")  # fmt: skip
    print(f"  produce -> md.enriched:   {result.to_enriched.text()}")
    print(f"  md.enriched -> md:latest: {result.to_latest.text()}")
    for lag in result.lags:
        caught = f"{lag.caught_up_s:.1f} s" if lag.caught_up_s is not None else f"not within {CATCH_UP_WAIT_S:.0f} s"
        print(
            f"  lag {lag.label:6s} ({lag.group} on {lag.topic}): floor grows {lag.slope_per_s:+,.0f}/s, "
            f"at most {lag.most:,}, caught up {caught} after the offer -> {'flat' if lag.held else 'NOT held'}"
        )
    print(f"  -> {'held' if result.held else 'NOT held'}")
    print(f"  CPU over {result.window_s:.0f} s (offer + catch-up): s per 1,000 events | cores busy | idle cores")
    for name in (*COMPONENTS, "other", "machine"):
        per_1000, cores = result.cpu_per_1000[name], result.cpu_seconds[name] / result.window_s
        print(f"    {name:15s} {per_1000:7.3f} | {cores:5.2f} | {idle[name]:5.2f}")
    busiest = ", ".join(f"{label} {seconds / result.window_s:.2f}" for label, seconds in result.outside.items())
    print(f'  busiest processes in "other" (cores): {busiest}')
    sys.stdout.flush()


def idle(meter: CpuMeter) -> tuple[dict[str, float], dict[str, float]]:
    """Cores each component keeps busy with nothing offered, and the busiest processes outside them."""
    note(f"idle for {IDLE_S} s (nothing offered)")
    before = meter.read()
    time.sleep(IDLE_S)
    after = meter.read()
    cores = {name: seconds / IDLE_S for name, seconds in cpu_used(before, after).items()}
    print("idle, nothing offered (cores): " + ", ".join(f"{name} {cores[name]:.2f}" for name in cores))
    busiest = {label: seconds / IDLE_S for label, seconds in outside(before, after).items()}
    print('  busiest processes in "other" (cores): ' + ", ".join(f"{k} {v:.2f}" for k, v in busiest.items()))
    return cores, busiest


def whole_path(settings: Settings, rates: list[int], seconds: int, warmup_s: float, all_rates: bool,
               prime_s: int = PRIME_S) -> PathResult:  # fmt: skip
    instruments = most_active(SAMPLED)
    results: list[RateResult] = []
    with live_stream(settings), serving_api(settings) as (url, serving_pid):
        sink = HBaseSinkSettings()
        note(f"deploying the HBase sink ({sink.name}: {sink.topic} -> {LATEST}, {HISTORY})")
        deploy(settings, sink)
        prime(settings, url, instruments, prime_s)
        meter = CpuMeter(settings, serving_pid)
        idle_cores, idle_outside = idle(meter)
        for rate in rates:
            result = run_rate(settings, url, instruments, meter, rate, seconds, warmup_s)
            print_rate(result, idle_cores)
            results.append(result)
            if not result.held and not all_rates:
                break
    return PathResult(idle_cores, idle_outside, results)


# ---- ceilings -------------------------------------------------------------------------------------------


def stream_ceiling(settings: Settings, backlog: int) -> Ceiling:
    """stream_bench's drains of one fresh backlog: Spark's pass-through, then the stream."""
    from tickflow.spark import spark_session
    from tickflow.stream.app import spark_conf

    stream = StreamSettings()
    note(f"stream against Spark's pass-through on a {backlog:,}-event backlog")
    with fresh_topics(settings) as topics:
        spark = spark_session(settings, "tickflow-bench-pipeline", master=settings.spark_master,
                              extra=spark_conf(stream), java_options=stream.java_options)  # fmt: skip
        try:
            events, _ = stream_bench.events_topic(settings, topics, backlog)
            ceiling = stream_bench.drain_ceiling(spark, settings, topics, events, backlog)
            drained = stream_bench.drain_stream(spark, settings, topics, events, backlog)
        finally:
            spark.stop()
    result = Ceiling("stream", drained["rate"], ceiling["rate"], drained["rate"] / ceiling["rate"],
                     {"stream": drained, "ceiling": ceiling})  # fmt: skip
    print(f"  stream drains at {result.ratio:.2f} of Spark's pass-through", flush=True)
    return result


Put = tuple[int, int, bytes, list[tuple[bytes, bytes, int, bytes]]]  # task, table (0 latest, 1 history), row, cells


def cells_of(columns: dict[bytes, tuple[int, bytes]]) -> list[tuple[bytes, bytes, int, bytes]]:
    """(family, qualifier, timestamp ms, value) of each ``family:qualifier`` -> (timestamp, value)."""
    return [(*column.split(b":", 1), at, value) for column, (at, value) in columns.items()]  # type: ignore[misc]


def sink_puts(run: hbase_sink_bench.Run, records: list[tuple[dict[str, Any], bytes]], tasks: int) -> list[Put]:
    """The Puts of HBase's own client for these records: per task (each owns a range of partitions, Connect's
    default range assignment; one instrument one partition, as hbase_sink_bench.backlog produces them) a
    md:history Put per record, as the sink's, then one md:latest Put per instrument with each column's newest cell
    (on a tie the later record's, as LatestBatch): the final row, the fewest md:latest cells the sink can write
    (it writes one row per instrument per conflation interval, latest.conflate.ms, whose count depends on its
    timing). So the client writes a subset of the sink's cells: a true ceiling."""
    layout = event_layout(run.settings)
    partitions = PARTITIONS
    task_of = {instrument: (n % partitions) * tasks // partitions for n, instrument in enumerate(run.instruments)}
    latest: list[dict[bytes, dict[bytes, tuple[int, bytes]]]] = [{} for _ in range(tasks)]
    puts: list[Put] = []
    for rec, value in records:
        task = task_of[rec["instrument_id"]]
        row, history, ts = history_cells(rec, value)
        puts.append((task, 1, row, cells_of({column: (ts, v) for column, v in history.items()})))
        columns = latest[task].setdefault(rec["instrument_id"].encode(), {})
        for at, cells in layout.latest_cells(rec).items():
            for column, v in cells.items():
                if column not in columns or at >= columns[column][0]:
                    columns[column] = (at, v)
    return puts + [
        (task, 0, row, cells_of(columns)) for task, rows in enumerate(latest) for row, columns in rows.items()
    ]


def write_puts(puts: list[Put], tasks: int, path: Path) -> None:
    """The file PutCeiling reads: int lanes, int puts, then per Put: byte lane, byte table, int row length, row,
    int cells, and per cell: short family length, family, short qualifier length, qualifier, long timestamp (ms),
    int value length, value (big-endian)."""
    with path.open("wb") as out:
        out.write(struct.pack(">ii", tasks, len(puts)))
        for lane, table, row, cells in puts:
            out.write(struct.pack(">BBi", lane, table, len(row)) + row + struct.pack(">i", len(cells)))
            for family, qualifier, ts, value in cells:
                out.write(struct.pack(">h", len(family)) + family + struct.pack(">h", len(qualifier)) + qualifier
                          + struct.pack(">qi", ts, len(value)) + value)  # fmt: skip


def build_put_ceiling(settings: Settings, work: Path) -> list[str]:
    """PutCeiling compiled into ``work`` against the sink module's test classpath (Maven resolves it; nothing
    under target/ is touched); the command that runs it, without its arguments."""
    project = settings.connectors_dir / "hbase-sink"
    classpath_file, log = work / "classpath.txt", work / "mvn.log"
    code = run_mvn(["-f", str(project / "pom.xml"), "dependency:build-classpath", "-Dmdep.includeScope=test",
                    f"-Dmdep.outputFile={classpath_file}"], log)  # fmt: skip
    if code != 0:
        raise RuntimeError(
            f"Maven could not resolve the sink's test classpath (exit {code}): {log.read_text()[-2000:]}"
        )
    classpath = classpath_file.read_text().strip()
    java = find_java(17, settings.java_home, "PutCeiling")
    source = project / "src" / "test" / "java" / Path(*PUT_CEILING.split(".")).with_suffix(".java")
    classes = work / "classes"
    subprocess.run([str(java.with_name("javac")), "-d", str(classes), "-cp", classpath, str(source)], check=True)
    return [str(java), "-Xmx2g", "-cp", f"{classes}:{classpath}", PUT_CEILING]


def run_put_ceiling(settings: Settings, command: list[str], *arguments: str) -> str:
    """PutCeiling ``write CELLS ...`` or ``flush`` against the stack's HBase; its output."""
    zookeeper = [settings.host, str(settings.ports.hbase_zookeeper)]
    action, *rest = arguments
    output = subprocess.run([*command, action, *rest[:1], *zookeeper, LATEST, HISTORY, *rest[1:]],
                            capture_output=True, text=True, check=False)  # fmt: skip
    if output.returncode != 0:
        raise RuntimeError(f"PutCeiling {action} failed (exit {output.returncode}): {output.stderr.strip()[-2000:]}")
    return output.stdout


def quiet_hbase(settings: Settings, command: list[str], cores: float = 0.2, timeout_s: float = 120.0) -> None:
    """Flush md:latest and md:history and wait until HBase is idle (below ``cores`` for 3 s), so that neither
    contender starts with a memstore, flushes or compactions the other left."""
    run_put_ceiling(settings, command, "flush")
    pid = supervisor(settings).running_pid("hbase")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = tree_seconds(pid)
        time.sleep(3)
        if tree_seconds(pid) - before < cores * 3:
            return
    note(f"  HBase was still busy {timeout_s:.0f} s after the flush: measuring anyway")


def put_ceiling(settings: Settings, command: list[str], cells: Path, sink: HBaseSinkSettings) -> dict[str, Any]:
    """PutCeiling writing ``cells`` with the sink's write buffer and periodic flush; its figures, with HBase's CPU
    over the whole run (its untimed warm-up quarter included)."""
    hbase = supervisor(settings).running_pid("hbase")
    before = tree_seconds(hbase)
    output = run_put_ceiling(settings, command, "write", str(cells), str(sink.write_buffer_bytes),
                             str(sink.flush_interval_ms))  # fmt: skip
    result = dict(json.loads(output.strip().splitlines()[-1]))
    result["hbase_cpu_s"] = tree_seconds(hbase) - before
    return result


def forget_latest(settings: Settings, instruments: list[str]) -> None:
    """Delete the run's md:latest rows: the page lists every instrument md:latest holds, and hbase_sink_bench's
    per-run instruments would stay there for good (their md:history rows go with the TTL)."""
    connection = happybase.Connection(*settings.hbase_thrift_address, timeout=30_000)
    try:
        with connection.table(LATEST).batch(batch_size=500) as batch:
            for instrument in instruments:
                batch.delete(instrument.encode())
    finally:
        connection.close()


class FirstWrite(threading.Thread):
    """When the first of ``keys`` (md:history rows) exists: where a sink's drain starts writing. drain_sink's
    "after start" clock starts when Connect reports the tasks running, which can be after they began writing
    (a 50,000-record backlog then "drains" at 120,000/s)."""

    def __init__(self, settings: Settings, keys: list[bytes]) -> None:
        super().__init__(name="first md:history row", daemon=True)
        self.settings, self.keys = settings, keys
        self.at: float | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        connection = happybase.Connection(*self.settings.hbase_thrift_address, timeout=30_000)
        try:
            while not self.halt.is_set() and self.at is None:
                if connection.table(HISTORY).rows(self.keys, columns=[HISTORY_COLUMN]):
                    self.at = time.monotonic()
                self.halt.wait(0.02)
        finally:
            connection.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


def drain_sink(run: hbase_sink_bench.Run, topic: str, records: list[tuple[dict[str, Any], bytes]],
               last_rows: dict[int, bytes]) -> dict[str, Any]:  # fmt: skip
    """hbase_sink_bench.drain_sink, with the rate from the first history row written to the last."""
    first = FirstWrite(run.settings, [history_cells(rec, value)[0] for rec, value in records[:PARTITIONS]])
    first.start()
    drained = hbase_sink_bench.drain_sink(run, topic, len(records), last_rows)
    done = time.monotonic()
    first.stop()
    drained["rate_writing"] = len(records) / (done - first.at) if first.at is not None else float("nan")
    return drained


def sink_ceiling(settings: Settings, events: int) -> Ceiling:
    """hbase_sink_bench's backlog drained by a per-run connector, then its cells put by HBase's own client; HBase
    flushed and idle before each."""
    sink = HBaseSinkSettings()
    note(f"sink against HBase's own client on a {events:,}-record backlog")
    work = Path(tempfile.mkdtemp(prefix="tickflow-bench-putceiling-"))
    run: hbase_sink_bench.Run | None = None
    try:
        with hbase_sink_bench.per_run(settings) as run:  # its connectors, then its topics, deleted at the end
            command = build_put_ceiling(settings, work)
            topic, records, last_rows = hbase_sink_bench.backlog(run, events)
            write_puts(sink_puts(run, records, sink.tasks), sink.tasks, work / "cells.bin")
            quiet_hbase(settings, command)
            drained = drain_sink(run, topic, records, last_rows)
            print(f"  drain sink     {drained['rate_writing']:>9,.0f} events/s from its first md:history row to its "
                  f"last ({drained['rate']:,.0f}/s from the deploy; Connect+HBase+Thrift "
                  f"{drained['cpu_s'] / events * 1000:.3f} CPU s per 1,000 events)", flush=True)  # fmt: skip
            quiet_hbase(settings, command)
            ceiling = put_ceiling(settings, command, work / "cells.bin", sink)
    finally:
        if run is not None:
            forget_latest(settings, run.instruments)
        shutil.rmtree(work, ignore_errors=True)
    print(f"  drain HBase    {ceiling['rate']:>9,.0f} events/s (PutCeiling: {ceiling['puts']:,} Puts, "
          f"{ceiling['cells']:,} cells: every md:history cell, each instrument's final md:latest row; "
          f"{ceiling['lanes']} lanes; HBase {ceiling['hbase_cpu_s'] / events * 1000:.3f} CPU s per 1,000 events, "
          f"warm-up included)", flush=True)  # fmt: skip
    ratio = drained["rate_writing"] / ceiling["rate"]
    print(f"  sink drains at {ratio:.2f} of HBase's own client", flush=True)
    return Ceiling("sink", drained["rate_writing"], ceiling["rate"], ratio, {"sink": drained, "ceiling": ceiling})


# ---- plot and main ----------------------------------------------------------------------------------------


def plot(rates: list[RateResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    offered = [r.rate for r in rates]
    left.plot(offered, [r.freshness.p50_ms for r in rates], "o-", label="p50")
    left.plot(offered, [r.freshness.p99_ms for r in rates], "s-", color="tab:red", label="p99")
    left.set_yscale("log")
    left.set_xlabel("offered events/s")
    left.set_ylabel("freshness at the page, ms (log)")
    left.set_title(f"Freshness of {SAMPLED} instruments through /api/latest")
    left.legend()
    names = [*COMPONENTS, "other"]
    labels = [f"{r.rate // 1000}k" for r in rates]
    bottom = np.zeros(len(rates))
    colours = plt.get_cmap("tab20")
    for n, name in enumerate(names):
        heights = np.array([max(0.0, r.cpu_per_1000[name]) for r in rates])
        right.bar(labels, heights, bottom=bottom, label=name, color=colours(n % 20))
        bottom += heights
    right.set_xlabel("offered events/s")
    right.set_ylabel("CPU s per 1,000 events")
    right.set_title("Where the cores go")
    right.legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    note(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="5000,20000,30000,40000")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of each offer left out of the figures")
    parser.add_argument(
        "--prime",
        type=int,
        default=PRIME_S,
        help=f"seconds of {PRIME_RATE:,}/s before the first rate (the JVMs' JIT warms for minutes)",
    )
    parser.add_argument("--all-rates", action="store_true", help="go on after a rate that is not held")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="events the stream's ceiling drains")
    parser.add_argument("--sink-backlog", type=int, default=200_000, help="records the sink's ceiling drains")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if unknown := skip - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}: choose from {','.join(SECTIONS)}")
    settings = Settings()
    stream, sink = StreamSettings(), HBaseSinkSettings()
    config = {"rates": args.rates, "seconds": args.seconds, "warmup_s": args.warmup, "prime_s": args.prime,
              "backlog": args.backlog,
              "sink_backlog": args.sink_backlog, "cores": psutil.cpu_count(), "spark_master": settings.spark_master,
              "stream": stream.model_dump(include={"trigger_interval", "max_offsets_per_trigger"}),
              "sink": sink.model_dump(include={"tasks", "max_poll_records", "flush_interval_ms",
                                               "write_buffer_bytes", "latest_conflate_ms"})}  # fmt: skip
    print(f"configuration: {config}", flush=True)
    path: PathResult | None = None
    ceilings: list[Ceiling] = []
    if "path" not in skip:
        rates = [int(r) for r in args.rates.split(",")]
        path = whole_path(settings, rates, args.seconds, args.warmup, args.all_rates, args.prime)
        if args.plot and path.rates:
            plot(path.rates, args.plot)
    if "stream-ceiling" not in skip:
        ceilings.append(stream_ceiling(settings, args.backlog))
    if "sink-ceiling" not in skip:
        ceilings.append(sink_ceiling(settings, args.sink_backlog))
    result = {"config": config, "path": asdict(path) if path else None, "ceilings": [asdict(c) for c in ceilings]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
