"""Secured mode's Kafka: SASL/SCRAM logins, one principal per component, and ACLs that refuse the rest.

One broker of its own (a temporary state directory, free ports, ``TICKFLOW_SECURED=1``), started once for the
module through ``tickflow stack up kafka`` as a person would, beside whatever stack the session uses. Its jars
are linked from the session's state directory when that one has them, so the start costs no Maven run.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from tests.support.stack import tickflow
from tickflow.kafka_auth import Principal, credential_file, kafka_client_config
from tickflow.runtime.paths import StatePaths
from tickflow.settings import Settings
from tickflow.topics import DLQ, ENRICHED, EVENTS, create_topics

pytestmark = pytest.mark.integration
STREAM_GROUP = "tickflow-enrichment"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def link_jars(cached: Path, lib: Path) -> None:
    """The session stack's Kafka jars (complete, same stamp) into a new state directory: hard links where the
    file system allows, copies otherwise; ``fetch_jars`` then finds its stamp and runs no Maven."""
    if (cached / ".complete").is_file():

        def link(source: str, target: str) -> None:
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)

        shutil.copytree(cached, lib, copy_function=link)


@pytest.fixture(scope="module")
def secured(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    state = tmp_path_factory.mktemp("secured-state")
    link_jars(StatePaths(settings.root).lib / "kafka", StatePaths(state).lib / "kafka")
    jmx_agent = next(StatePaths(settings.root).lib.glob("jmx-exporter/*.jar"), None)
    if jmx_agent is not None:  # the session stack's metrics agent: no Maven run for this broker either
        (StatePaths(state).lib / "jmx-exporter").mkdir(parents=True)
        shutil.copy2(jmx_agent, StatePaths(state).lib / "jmx-exporter" / jmx_agent.name)
    kafka, controller, metrics = free_port(), free_port(), free_port()
    ports = {
        "TICKFLOW_PORT_KAFKA": str(kafka),
        "TICKFLOW_PORT_KAFKA_CONTROLLER": str(controller),
        "TICKFLOW_PORT_KAFKA_METRICS": str(metrics),
    }
    env = {**os.environ, "TICKFLOW_STATE_DIR": str(state), "TICKFLOW_SECURED": "1", **ports}
    up = tickflow("stack", "up", "kafka", check=False, env=env)
    try:
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
        secured = Settings(
            state_dir=state,
            secured=True,
            ports=settings.ports.model_copy(
                update={"kafka": kafka, "kafka_controller": controller, "kafka_metrics": metrics}
            ),
        )
        create_topics(secured, (EVENTS, ENRICHED, DLQ))  # as admin, as `tickflow topics create` does
        yield secured
    finally:
        tickflow("stack", "down", "kafka", check=False, env=env)


def produce(settings: Settings, principal: Principal, topic: str, idempotent: bool = False) -> KafkaError | None:
    """Produce one record as ``principal``; the delivery error, or None when the broker took it."""
    outcome: list[KafkaError | None] = []
    producer = Producer(
        {**kafka_client_config(settings, principal), "message.timeout.ms": 10_000, "log_level": 0,
         "enable.idempotence": idempotent}
    )  # fmt: skip
    producer.produce(topic, b"v", key=b"XNAS.MSFT", on_delivery=lambda err, msg: outcome.append(err))
    producer.flush(15)
    assert outcome, f"no delivery report for {topic} within 15 s"
    return outcome[0]


def refused(error: KafkaError | None) -> bool:
    return error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_each_component_may_do_its_work_and_is_refused_the_rest(secured: Settings) -> None:
    simulator, stream, airflow = Principal.SIMULATOR, Principal.STREAM, Principal.AIRFLOW
    assert produce(secured, simulator, EVENTS.name) is None
    assert refused(produce(secured, simulator, ENRICHED.name))

    consumer = Consumer(
        {**kafka_client_config(secured, stream), "group.id": STREAM_GROUP, "auto.offset.reset": "earliest",
         "enable.auto.commit": False, "log_level": 0}
    )  # fmt: skip
    try:
        consumer.subscribe([EVENTS.name])
        message = None
        for _ in range(30):
            message = consumer.poll(1)
            if message is not None:
                break
        assert message is not None and message.error() is None and message.value() == b"v"
        committed = consumer.commit(message, asynchronous=False)
        assert committed and committed[0].error is None
    finally:
        consumer.close()
    assert produce(secured, stream, ENRICHED.name, idempotent=True) is None  # as the stream's fill tasks do
    assert produce(secured, stream, DLQ.name) is None
    assert refused(produce(secured, stream, EVENTS.name))
    other_group = Consumer({**kafka_client_config(secured, stream), "group.id": "someone-else", "log_level": 0})
    try:
        other_group.subscribe([EVENTS.name])
        error = next((m.error() for _ in range(20) if (m := other_group.poll(0.5)) is not None), None)
        assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, error
    finally:
        other_group.close()

    admin = AdminClient({**kafka_client_config(secured, airflow), "log_level": 0})
    assert {EVENTS.name, ENRICHED.name, DLQ.name} <= set(admin.list_topics(timeout=10).topics)
    partition = TopicPartition(EVENTS.name, message.partition())
    ends = admin.list_offsets({partition: OffsetSpec.latest()}, request_timeout=10)
    assert ends[partition].result().offset == message.offset() + 1
    lag = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(STREAM_GROUP, [partition])])
    assert lag[STREAM_GROUP].result().topic_partitions[0].offset == message.offset() + 1
    assert refused(produce(secured, airflow, EVENTS.name))
    assert refused(produce(secured, Principal.BACKFILL, EVENTS.name))  # it reads md.events, and writes no topic


def test_a_consumer_that_only_assigns_partitions_still_needs_its_group(secured: Settings) -> None:
    """librdkafka looks the group's coordinator up whenever ``group.id`` is set, committing or not, and hands the
    refusal over as a message error: so every group id a component uses is one its principal may describe."""

    def first_error(group: str) -> KafkaError | None:
        consumer = Consumer(
            {**kafka_client_config(secured, Principal.STREAM), "group.id": group, "enable.auto.commit": False,
             "log_level": 0}
        )  # fmt: skip
        try:
            consumer.assign([TopicPartition(EVENTS.name, 0, 0)])
            messages = [m for _ in range(10) if (m := consumer.poll(0.5)) is not None]
            return next((m.error() for m in messages if m.error() is not None), None)
        finally:
            consumer.close()

    refusal = first_error("someone-else")
    assert refusal is not None and refusal.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, refusal
    assert first_error(f"{STREAM_GROUP}-health") is None


def test_a_wrong_password_and_an_anonymous_client_are_refused(secured: Settings) -> None:
    errors: list[KafkaError] = []
    wrong = {**kafka_client_config(secured, Principal.STREAM), "sasl.password": "not-the-password"}
    admin = AdminClient({**wrong, "log_level": 0, "error_cb": errors.append})
    for _ in range(50):  # the broker answers the login at once; poll serves the error callback
        if errors:
            break
        admin.poll(0.1)
    assert [error.code() for error in errors][:1] == [KafkaError._AUTHENTICATION], errors
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=1)

    anonymous = {"bootstrap.servers": secured.bootstrap_servers, "log_level": 0}  # PLAINTEXT, no login
    with pytest.raises(KafkaException):
        AdminClient(anonymous).list_topics(timeout=2)


def test_credentials_are_readable_by_their_owner_only(secured: Settings) -> None:
    for principal in Principal:
        assert stat.S_IMODE(credential_file(secured, principal).stat().st_mode) == 0o600, principal
    assert stat.S_IMODE((secured.root / "kafka" / "server.properties").stat().st_mode) == 0o600
