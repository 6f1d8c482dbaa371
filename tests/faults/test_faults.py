"""Faults at load: with the simulator feeding the stream, each component is killed with SIGKILL at a random
moment mid-flow and restarted the way an operator would, one after the other; after the flow ends nothing
sent is lost.

One flow for all seven faults (a flow per fault would cost CI seven Spark starts and seven catch-ups):
the simulator feeds a topic of this test's own at a moderate rate, with late, duplicated and corrupt
messages; a stream on that topic (its own checkpoint, a watchdog restarting it when it dies, as the
enrichment_stream DAG does every five minutes) publishes to a topic the HBase sink (a connector of this
test's own) writes into md:latest and md:history; the trades source connector runs on the same worker.
Each fault: SIGKILL of the component's whole process group, then ``tickflow stack up <service>`` (for the
stream, the watchdog); a connector task that failed meanwhile is restarted through Connect's REST API (what
the enrichment_stream DAG's check_connectors tells the operator to do). Recovered = the stream has processed
everything the topic held when the component was back, and the sink everything the stream had published.

After the flow, read as a read_committed consumer reads (the stream publishes in Kafka transactions):
- every valid (instrument, event_time) sent reaches the output topic, and no micro-batch's record twice (a later
  batch publishes an event time again when a re-sent or late event of that time arrives: the fill contract);
- the stream's final state (its checkpoint) equals an independent computation over the input topic;
- md:latest holds that state for every instrument of the flow;
- the DLQ holds every invalid message sent, byte for byte, as many times as it was sent, and nothing else (the dead
  letters go out in the same transactions as the output).
The table of what was killed, when, how long it took to recover, lost and duplicated records is written to
``logs/faults.md`` in the state directory (docs/reliability.md quotes a run).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests.support.fill import judge_input, read_topic
from tests.support.kafka import as_admin
from tests.support.stack import tickflow
from tests.support.stream import published, stream_env, stream_settings
from tickflow.fill.snapshot import batch_end_offsets, committed, last_committed_batch
from tickflow.hbase.store import MarketDataStore
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sinks.connect import ConnectClient
from tickflow.sinks.hbase import HBaseSinkSettings
from tickflow.sinks.hbase import deploy as deploy_sink
from tickflow.sources.feed import FeedConfig, FeedStats, run_feed
from tickflow.sources.trades_connector import TradesSourceSettings
from tickflow.sources.trades_connector import deploy as deploy_trades
from tickflow.stack import supervisor
from tickflow.stack.supervisor import State

pytestmark = [pytest.mark.integration, pytest.mark.faults]

FAULTS = ("stream", "kafka", "registry", "connect", "hbase", "metastore", "postgres")
# The cluster profile's (TICKFLOW_PROFILE=cluster): a Spark worker with its executors (their tasks rerun on the
# other), the broker leading partitions of both topics (leaders move), the DataNode while the stream checkpoints,
# the Connect worker running the sink's task (the task moves to the other worker before the killed one returns).
# Not the stream: FAULTS kills it, and on the cluster test_airflow_stream's kill -9 (make test-cluster) does.
CLUSTER_FAULTS = ("spark-worker-1", "kafka-leader", "hdfs-datanode", "connect-worker")
# How long the cluster's other Connect worker may take to run a dead worker's task: the group notices the death
# (session timeout, 10 s), then waits scheduled.rebalance.max.delay.ms (15 s, tickflow.stack.connect).
TASK_MOVE_S = 120.0
# Events/s offered: a restart's backlog of a minute drains in a few 50k-record micro-batches. The plain profile's two
# cores hold 5,000-8,000/s of the whole path, less the ~0.1 cores monitoring takes (docs/operations.md): at 5,000
# the catch-up after each kill had so little to spare that CI's run took 1,029 s instead of ~350, so it runs at
# 4,000. The cluster profile's hold ~4,000/s (replication 3, state on HDFS; docs/performance.md): at 5,000 its run
# took 17.5 min, so CI runs it at 2,000. TICKFLOW_FAULTS_RATE sets another.
RATE, CLUSTER_RATE = 4_000, 2_000

SEED = 41  # a universe of its own: md:latest rows no other test writes
CALM_S = (2.0, 6.0)  # flow between two faults, drawn at random: the kill lands anywhere in a micro-batch


def offered_rate(settings: Settings) -> int:
    return int(os.environ.get("TICKFLOW_FAULTS_RATE", CLUSTER_RATE if settings.clustered else RATE))


@dataclass
class Fault:
    component: str
    killed_at_s: float = 0.0  # since the flow started
    back_s: float = 0.0  # kill -> the component answers again
    recovered_s: float = 0.0  # kill -> the stream and the sink have caught up with what was there when it was back
    operator: list[str] = field(default_factory=list)  # what else had to be done


class Flow:
    """The feed, the stream on the test's topics with its watchdog, and the sink, while faults happen."""

    def __init__(self, settings: Settings, topics: dict[str, str], root: Path) -> None:
        self.settings, self.topics = settings, topics
        # Larger micro-batches than the stream tests': a restart's backlog drains in a few of them.
        self.stream = stream_settings(topics, root).model_copy(update={"max_offsets_per_trigger": 50_000})
        self.sink = HBaseSinkSettings(name=f"faults-sink-{topics['enriched']}", topic=topics["enriched"], tasks=1)
        self.log = root / "stream.log"
        self.stopping = threading.Event()  # ends the watchdog
        self.feed_done = threading.Event()  # ends the feed
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts: list[tuple[float, str]] = []
        self.stats: FeedStats | None = None
        self.feed_error: BaseException | None = None
        self.started = time.monotonic()

    # -- the stream and its watchdog ---------------------------------------------------------------

    def start_stream(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tickflow.cli", "stream"], env=stream_env(self.stream), stdout=log,
                stderr=log, start_new_session=True,
            )  # fmt: skip

    def watchdog(self) -> None:
        while not self.stopping.wait(1.0):
            if self.process is not None and self.process.poll() is not None:
                last = (self.log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
                self.restarts.append((self.elapsed(), last[-200:]))
                self.start_stream()

    def kill_stream(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)

    def stop_stream(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(120)

    # -- the feed ----------------------------------------------------------------------------------

    def feed(self, schema_id: int) -> None:
        rate = offered_rate(self.settings)
        config = FeedConfig(rate=rate, seed=SEED, instruments=25, out_of_order=0.1, duplicates=0.02, corrupt=0.01,
                            topic=self.topics["events"])  # fmt: skip
        try:
            self.stats = run_feed(self.settings, config, schema_id, stop=self.feed_done.is_set)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.feed_error = error

    # -- progress ----------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def ends(self, topic: str) -> dict[int, int]:
        consumer = Consumer({**as_admin(self.settings), "group.id": f"f-{uuid.uuid4()}"})
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3)}
        finally:
            consumer.close()

    def stream_offsets(self) -> dict[int, int]:
        checkpoint = self.stream.checkpoint(self.settings)
        try:
            batch = last_committed_batch(checkpoint)
            return {} if batch is None else batch_end_offsets(checkpoint, batch).get(self.topics["events"], {})
        except (OSError, ValueError):  # a batch being written
            return {}

    def sink_offsets(self) -> dict[int, int]:
        admin = AdminClient(as_admin(self.settings))
        request = ConsumerGroupTopicPartitions(f"connect-{self.sink.name}")
        try:
            result = admin.list_consumer_group_offsets([request])[request.group_id].result(10)
        except Exception:  # noqa: BLE001 - Kafka or the group coordinator not back yet
            return {}
        return {tp.partition: tp.offset for tp in result.topic_partitions if tp.topic == self.topics["enriched"]}

    def published_ends(self) -> dict[int, int]:
        """Per partition of the output, the offset after its last record: the stream writes in transactions, whose
        commit markers take offsets too, and a consumer (the sink) commits the offset after the last record it
        read, not after the marker."""
        topic = self.topics["enriched"]
        consumer = Consumer({**as_admin(self.settings), "group.id": f"f-{uuid.uuid4()}", "enable.partition.eof": True})
        try:
            ends, starts = {}, []
            for p, high in self.ends(topic).items():
                low = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
                ends[p] = low  # nothing to read, unless a record is found below
                if high > low:  # a transaction has a record for each marker: the last 500 offsets hold records
                    starts.append(TopicPartition(topic, p, max(low, high - 500)))
            pending = {tp.partition for tp in starts}
            consumer.assign(starts)
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                for message in consumer.consume(1000, 1.0):
                    error = message.error()
                    if error is None:
                        ends[message.partition()] = max(ends[message.partition()], message.offset() + 1)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
            return ends
        finally:
            consumer.close()

    def wait_caught_up(self, timeout_s: float = 600) -> None:
        """Until the stream processed what the input held now, then the sink what the stream had published."""
        deadline = time.monotonic() + timeout_s
        for target, reached in ((self.ends(self.topics["events"]), self.stream_offsets), (None, self.sink_offsets)):
            target = target or self.published_ends()
            while not all(reached().get(p, -1) >= end for p, end in target.items() if end > 0):
                assert time.monotonic() < deadline, f"not caught up within {timeout_s:.0f}s: {reached()} < {target}"
                assert self.feed_error is None, self.feed_error
                time.sleep(1.0)


def restart_failed_connectors(settings: Settings) -> list[str]:
    """Restart every failed connector or task, as check_connectors tells the operator; name them."""
    client = ConnectClient(settings.connect_urls)
    failed = [status.name for status in client.statuses() if status.failures]
    for name in failed:
        client.restart_failed(name)
    return failed


def bring_back(settings: Settings, component: str) -> list[str]:
    """``tickflow stack up <component>``; then whatever else the kill took down, and failed connectors."""
    result = tickflow("stack", "up", component, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    done = []
    stack = supervisor(settings)
    down = [s.name for s in stack.ordered() if stack.status(s.name).state != State.HEALTHY]
    if down:
        result = tickflow("stack", "up", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        done.append(f"stack up ({', '.join(down)} were down too)")
    for _ in range(20):  # a task fails when its next write or poll meets the dead component: look for a while
        if restarted := restart_failed_connectors(settings):
            done.append(f"restarted connector {', '.join(restarted)}")
            break
        time.sleep(0.5)
    return done


def kill(settings: Settings, flow: Flow, component: str) -> None:
    if component == "stream":
        flow.kill_stream()
        return
    pid = supervisor(settings).running_pid(component)
    assert pid is not None, f"{component} is not running"
    os.killpg(pid, signal.SIGKILL)  # every service runs in a session of its own


def victim(settings: Settings, flow: Flow, fault: str) -> tuple[str, str]:
    """The service a fault kills, and how the fault table names it."""
    if fault == "kafka-leader":
        metadata = AdminClient(as_admin(settings)).list_topics(timeout=10)
        leads = [
            {p.leader: p.id for p in metadata.topics[flow.topics[kind]].partitions.values()}
            for kind in ("events", "enriched")
        ]
        broker = next(b for b in sorted(leads[0]) if b in leads[1])
        what = f"md.events p{leads[0][broker]}, md.enriched p{leads[1][broker]}"
        return f"kafka-{broker}", f"kafka-{broker} (leader of {what})"
    if fault == "connect-worker":
        status = ConnectClient(settings.connect_urls).status(flow.sink.name)
        assert status is not None and status.tasks, f"{flow.sink.name} has no task"
        host = status.tasks[0].worker_id.split(":")[0]
        service = f"connect-{settings.connect_hosts.index(host) + 1}"
        return service, f"{service} (ran the sink's task)"
    return fault, fault


def wait_task_moved(settings: Settings, flow: Flow, dead: str) -> str:
    """Until the sink's task runs on a live worker; says where and after how long."""
    dead_host = settings.connect_hosts[int(dead.rsplit("-", 1)[1]) - 1]
    started = time.monotonic()
    while time.monotonic() - started < TASK_MOVE_S:
        try:
            status = ConnectClient(settings.connect_urls, rebalance_wait_s=1).status(flow.sink.name)
        except Exception:  # noqa: BLE001 - the group rebalancing
            status = None
        task = status.tasks[0] if status and status.tasks else None
        if task and task.state == "RUNNING" and not task.worker_id.startswith(f"{dead_host}:"):
            return f"task moved to {task.worker_id} after {time.monotonic() - started:.0f} s"
        time.sleep(1.0)
    pytest.fail(f"the sink's task did not move off {dead} within {TASK_MOVE_S:.0f} s")


@pytest.fixture
def flow(reference_data: Settings, topics: dict[str, str], tmp_path: Path) -> Iterator[Flow]:
    """The flow on a stack with the reference data loaded (the stream enriches with it), alone or after the
    other suites (``make faults-cluster`` runs it on a fresh cluster stack)."""
    stack = reference_data
    running = Flow(stack, topics, tmp_path)
    deploy_sink(stack, running.sink)
    deploy_trades(stack, TradesSourceSettings())
    yield running
    running.feed_done.set()
    running.stopping.set()
    running.stop_stream()
    ConnectClient(stack.connect_urls).delete(running.sink.name)


@pytest.mark.timeout(1800)
def test_each_component_killed_mid_flow_loses_nothing(stack: Settings, flow: Flow) -> None:
    schema = load("tickflow.md.MarketEvent", stack.schemas_dir)
    schema_id = int(SchemaRegistryClient(stack.registry_client_config).register_schema(
        f"{flow.topics['events']}-value", Schema(schema.text, "AVRO")))  # fmt: skip
    draw = random.Random()
    flow.start_stream()
    feeder = threading.Thread(target=flow.feed, args=(schema_id,), daemon=True)
    feeder.start()
    watchdog = threading.Thread(target=flow.watchdog, daemon=True)
    flow.wait_caught_up(timeout_s=300)  # the first micro-batches (the Spark start)
    watchdog.start()

    faults: list[Fault] = []
    for component in CLUSTER_FAULTS if stack.clustered else FAULTS:
        time.sleep(draw.uniform(*CALM_S))
        service, label = victim(stack, flow, component)
        fault = Fault(label, killed_at_s=flow.elapsed())
        killed = flow.process  # the watchdog may put a new process there as soon as this one is gone
        kill(stack, flow, service)
        if component == "stream":
            while killed is not None and killed.poll() is None:
                time.sleep(0.1)
            time.sleep(1.5)  # the watchdog's next look
        else:
            if component == "connect-worker":
                fault.operator.append(wait_task_moved(stack, flow, service))
            fault.operator += bring_back(stack, service)
        fault.back_s = flow.elapsed() - fault.killed_at_s
        flow.wait_caught_up()
        fault.recovered_s = flow.elapsed() - fault.killed_at_s
        faults.append(fault)

    flow.feed_done.set()
    feeder.join(120)
    assert flow.feed_error is None and flow.stats is not None, flow.feed_error
    flow.wait_caught_up()  # the watchdog keeps the stream up while it drains
    flow.stopping.set()
    flow.stop_stream()

    expected_final, expected_times, rejected = judge_input(stack, flow.topics["events"])
    final, times, records = published(stack, flow.topics["enriched"])
    lost = expected_times - times
    # A replayed micro-batch has the id it had: its records again are (instrument, event time, batch id) again. The
    # same (instrument, event time) from a later batch is the fill contract (a re-sent or late event of that time).
    copies = Counter((r["instrument_id"], r["event_time"], r["batch_id"]) for r in records)
    duplicates = sum(n - 1 for n in copies.values())
    dlq = Counter(m.value() for m in read_topic(stack, flow.topics["dlq"]))
    write_table(stack, flow, faults, len(lost), duplicates, dlq.total() - rejected.total())
    assert not lost, f"{len(lost)} valid (instrument, event_time) never published, e.g. {sorted(lost)[:3]}"
    assert times == expected_times, "published only what was sent"
    assert duplicates == 0, f"{duplicates} records published twice"
    assert final == expected_final

    state = committed(flow.stream.checkpoint(stack)).states
    assert {i: {n: v for n, v in s.values.items() if v is not None} for i, s in state.items()} == expected_final

    latest = MarketDataStore(stack).latest(sorted(expected_final))
    assert {i: {n: latest[i].values.get(n) for n in fields} for i, fields in expected_final.items()} == expected_final

    assert dlq == rejected, "the DLQ holds every invalid message, as many times as sent, and nothing else"


def write_table(
    settings: Settings, flow: Flow, faults: list[Fault], lost: int, duplicates: int, dlq_duplicates: int
) -> None:
    lines = [
        f"Fault run ({settings.profile} profile) at {offered_rate(settings):,} events/s, "
        f"{flow.stats.sent if flow.stats else 0:,} events sent in {flow.elapsed():.0f} s; "
        f"stream restarts by the watchdog: {len(flow.restarts)}; "
        f"lost (valid instrument/event_time pairs never published): {lost}; "
        f"duplicates on the output topic (same instrument, event time and batch again): {duplicates}; "
        f"on the DLQ: {dlq_duplicates}",
        "",
        "| killed (SIGKILL) | at (s into the flow) | back (s) | recovered (s) | operator action |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {f.component} | {f.killed_at_s:.0f} | {f.back_s:.1f} | {f.recovered_s:.1f} | "
        f"{'; '.join(f.operator) or '-'} |"
        for f in faults
    ]
    lines += ["", "Watchdog restarts of the stream (s into the flow, the log's last line before):"]
    lines += [f"- {at:.0f}: {last}" for at, last in flow.restarts]
    text = "\n".join(lines) + "\n"
    (settings.root / "logs" / "faults.md").write_text(text)
    print(text)
