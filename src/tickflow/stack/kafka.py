"""Kafka 4.x in KRaft mode: one JVM that is both broker and controller."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Sequence

from tickflow.stack.base import StackError
from tickflow.stack.jvm import CONSOLE_LOG4J2, JvmService

HEALTH_TOPIC = "_tickflow.health"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # the broker's message.max.bytes: no record is larger


class Kafka(JvmService):
    name = "kafka"
    heap = "512m"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.kafka, self.settings.ports.kafka_controller)

    @property
    def address(self) -> str:
        return self.settings.bootstrap_servers

    @property
    def coordinates(self) -> list[str]:
        log4j = self.settings.log4j_version
        return [
            f"org.apache.kafka:kafka_2.13:{self.settings.kafka_version}",
            f"org.apache.logging.log4j:log4j-core:{log4j}",
            # Kafka 4.1 brings slf4j-api 1.7, so the slf4j 1.x binding is the one that works.
            f"org.apache.logging.log4j:log4j-slf4j-impl:{log4j}",
        ]

    def write_config(self) -> None:
        host, ports = self.settings.host, self.settings.ports
        data = self.home / "data"
        (self.home / "log4j2.properties").write_text(CONSOLE_LOG4J2)
        (self.home / "server.properties").write_text(
            f"""\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={host}:{ports.kafka_controller}
listeners=PLAINTEXT://{host}:{ports.kafka},CONTROLLER://{host}:{ports.kafka_controller}
advertised.listeners=PLAINTEXT://{host}:{ports.kafka},CONTROLLER://{host}:{ports.kafka_controller}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
message.max.bytes={MAX_MESSAGE_BYTES}
"""
        )
        if not (data / "meta.properties").exists():
            self._format_storage()

    def _format_storage(self) -> None:
        cluster_id = str(uuid.uuid4().hex[:22])
        cmd = [
            *self.java_command(),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--ignore-formatted",
            "-t",
            cluster_id,
            "-c",
            str(self.home / "server.properties"),
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            raise StackError(f"kafka could not format its storage (exit {proc.returncode}): read {self.log_path}.")

    def command(self) -> list[str]:
        return [*self.java_command(), "kafka.Kafka", str(self.home / "server.properties")]

    def check_health(self) -> None:
        round_trip(self.settings.bootstrap_servers)


def round_trip(bootstrap_servers: str, timeout_s: float = 10.0) -> None:
    """Produce one message and read that very message back; raise if either leg fails."""
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    quiet: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap_servers,
        "log_level": 0,
        "socket.timeout.ms": 5000,
    }
    admin = AdminClient(quiet)
    metadata = admin.list_topics(timeout=timeout_s)
    if HEALTH_TOPIC not in metadata.topics:
        futures = admin.create_topics([NewTopic(HEALTH_TOPIC, 1, 1)], operation_timeout=timeout_s)
        try:
            futures[HEALTH_TOPIC].result(timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    token = uuid.uuid4().bytes
    delivered: list[int] = []
    producer = Producer({**quiet, "message.timeout.ms": int(timeout_s * 1000)})
    producer.produce(
        HEALTH_TOPIC, token, on_delivery=lambda err, msg: None if err else delivered.append(msg.offset() or 0)
    )
    producer.flush(timeout_s)
    if not delivered:
        raise StackError("kafka did not acknowledge the health-check message")
    consumer = Consumer({**quiet, "group.id": "tickflow-health", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(HEALTH_TOPIC, 0, delivered[0])])
        message = consumer.poll(timeout_s)
    finally:
        consumer.close()
    if message is None or message.error() or message.value() != token:
        raise StackError("kafka did not return the health-check message")
