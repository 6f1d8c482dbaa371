"""Kafka 4.x in KRaft mode: one JVM that is both broker and controller.

In secured mode (``TICKFLOW_SECURED``) the client listener takes SASL/SCRAM-SHA-512 logins only and the
StandardAuthorizer denies what no ACL allows; ``admin`` is the super user the broker itself, the stack and
tickflow's admin commands log in as. Its SCRAM credential is written into the metadata log when the storage is
formatted (KRaft reads SCRAM credentials from there, so the first one cannot come from a running broker); the
other principals' credentials and their ACLs are created by :meth:`Kafka.bootstrap` (``kafka_acls``).

The controller listener is SASL too, with the PLAIN mechanism against a static JAAS user (``admin``, same
password): a controller cannot check SCRAM logins, whose credentials live in the very metadata log it serves,
and a PLAINTEXT controller listener would make whoever connects to it ``User:ANONYMOUS``, which the broker's own
calls to the controller would need as a super user.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tickflow.kafka_auth import (
    HEALTH_GROUP,
    SASL_MECHANISM,
    SCRAM_ITERATIONS,
    Principal,
    credential_file,
    credentials_dir,
    jaas_config,
    kafka_client_config,
    kafka_password,
)
from tickflow.secret_file import write_private
from tickflow.settings import Settings
from tickflow.stack.base import StackError
from tickflow.stack.jvm import CONSOLE_LOG4J2, JvmService
from tickflow.topics import MAX_MESSAGE_BYTES

HEALTH_TOPIC = "_tickflow.health"
PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


def salted_scram(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """A SCRAM-SHA-512 credential as ``kafka-storage format --add-scram`` takes it, salted here so that the
    password itself never appears in a command line (``ps`` shows those to every user)."""
    salt = secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return (
        f"{SASL_MECHANISM}=[name={Principal.ADMIN.value},iterations={iterations},"
        f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]'
    )


class Kafka(JvmService):
    """One broker (and controller): the only one (``kafka``), or node ``node`` of the cluster profile's three
    (``kafka-<node>``, on the profile's address for it), which form one quorum and replicate every partition."""

    name = "kafka"
    jmx_rules = "kafka"
    heap = "512m"

    def __init__(self, settings: Settings, node: int = 0) -> None:
        super().__init__(settings)
        self.node = node
        if node:
            self.name = f"kafka-{node}"
            self.starts_with_peers = True  # a controller quorum of three answers only once two run

    @property
    def group(self) -> str:
        return "kafka"

    @property
    def host(self) -> str:
        return self.settings.kafka_hosts[self.node - 1] if self.node else self.settings.host

    @property
    def node_id(self) -> int:
        return self.node or 1

    @property
    def ports(self) -> Sequence[int]:
        ports = self.settings.ports
        return (ports.kafka, ports.kafka_controller, ports.kafka_metrics)

    @property
    def metrics_port(self) -> int:
        return self.settings.ports.kafka_metrics

    @property
    def address(self) -> str:
        return f"{self.host}:{self.settings.ports.kafka}"

    @property
    def coordinates(self) -> list[str]:
        log4j = self.settings.log4j_version
        return [
            f"org.apache.kafka:kafka_2.13:{self.settings.kafka_version}",
            f"org.apache.logging.log4j:log4j-core:{log4j}",
            # Kafka 4.1 brings slf4j-api 1.7, so the slf4j 1.x binding is the one that works.
            f"org.apache.logging.log4j:log4j-slf4j-impl:{log4j}",
        ]

    @property
    def secured_marker(self) -> Path:
        """Present when the storage was formatted in secured mode, i.e. holds the admin SCRAM credential."""
        return self.home / "storage-has-admin-credential"

    def write_config(self) -> None:
        host, ports, settings = self.host, self.settings.ports, self.settings
        quorum = ",".join(f"{peer}:{ports.kafka_controller}" for peer in settings.kafka_hosts)
        replication, min_insync = settings.kafka_replication, settings.kafka_min_insync
        data = self.home / "data"
        formatted = (data / "meta.properties").exists()
        (self.home / "log4j2.properties").write_text(CONSOLE_LOG4J2)
        if self.settings.secured:
            self._check_secured_storage(formatted)
            credentials = credentials_dir(self.settings)
            credentials.mkdir(parents=True, exist_ok=True)
            credentials.chmod(0o700)
            listeners = f"""\
listeners=SASL_PLAINTEXT://{host}:{ports.kafka},CONTROLLER://{host}:{ports.kafka_controller}
advertised.listeners=SASL_PLAINTEXT://{host}:{ports.kafka},CONTROLLER://{host}:{ports.kafka_controller}
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
{self._security()}"""
        else:
            listeners = f"""\
listeners=PLAINTEXT://{host}:{ports.kafka},CONTROLLER://{host}:{ports.kafka_controller}
advertised.listeners=PLAINTEXT://{host}:{ports.kafka},CONTROLLER://{host}:{ports.kafka_controller}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""
        # In secured mode it holds the admin password: private either way, so no leftover copy is readable.
        write_private(
            self.home / "server.properties",
            f"""\
process.roles=broker,controller
node.id={self.node_id}
controller.quorum.bootstrap.servers={quorum}
controller.listener.names=CONTROLLER
{listeners}log.dirs={data}
num.partitions=1
auto.create.topics.enable=true
default.replication.factor={replication}
min.insync.replicas={min_insync}
offsets.topic.replication.factor={replication}
offsets.topic.num.partitions=8
transaction.state.log.replication.factor={replication}
transaction.state.log.min.isr={min_insync}
share.coordinator.state.topic.replication.factor={replication}
share.coordinator.state.topic.min.isr={min_insync}
group.initial.rebalance.delay.ms=0
log.retention.hours=168
message.max.bytes={MAX_MESSAGE_BYTES}
""",
        )
        if not formatted:
            self._format_storage()

    def _security(self) -> str:
        admin, password = Principal.ADMIN.value, kafka_password(self.settings, Principal.ADMIN)
        plain = f'{PLAIN_LOGIN_MODULE} required username="{admin}" password="{password}" user_{admin}="{password}";'
        return f"""\
sasl.enabled.mechanisms={SASL_MECHANISM}
sasl.mechanism.inter.broker.protocol={SASL_MECHANISM}
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={jaas_config(admin, password)}
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={plain}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{admin}
"""

    def _check_secured_storage(self, formatted: bool) -> None:
        data = self.home / "data"
        if formatted and not self.secured_marker.exists():
            raise StackError(
                f"Kafka's storage in {data} was formatted before secured mode was turned on, so it holds no admin "
                f"credential: stop kafka, delete {data} (its topics go with it) and start it again, or unset "
                "TICKFLOW_SECURED."
            )
        admin_file = credential_file(self.settings, Principal.ADMIN)
        if formatted and not admin_file.exists():
            raise StackError(
                f"The Kafka admin password file {admin_file} was deleted, and the broker's storage holds only the "
                f"old password: put the file back, or stop kafka, delete {data} (its topics go with it) and start "
                "it again."
            )

    def _format_storage(self) -> None:
        # Outside secured mode no admin password is made: nothing would ever log in with it.
        if self.node:
            quorum = self._quorum()
            scram, cluster_id = quorum.get("scram"), quorum["cluster_id"]
            voters = ",".join(
                f"{n}@{peer}:{self.settings.ports.kafka_controller}:{quorum['directories'][n - 1]}"
                for n, peer in enumerate(self.settings.kafka_hosts, start=1)
            )
            # The same voters (node, controller listener, directory id) on every node: one quorum of three.
            controllers = ["--initial-controllers", voters]
        else:
            scram, cluster_id = self._admin_scram(), str(uuid.uuid4().hex[:22])
            controllers = ["--standalone"]  # a quorum of one
        config = str(self.home / "server.properties")
        scram_option = ["--add-scram", scram] if scram else []
        arguments = ["kafka.tools.StorageTool", "format", *controllers, "--ignore-formatted", "-t", cluster_id,
                     "-c", config, *scram_option]  # fmt: skip
        self.run_tool(arguments, "format its storage")
        if self.settings.secured:
            self.secured_marker.write_text("formatted with the admin SCRAM credential\n")

    def _admin_scram(self) -> str | None:
        return salted_scram(kafka_password(self.settings, Principal.ADMIN)) if self.settings.secured else None

    def _quorum(self) -> dict[str, Any]:
        """What every node of the cluster profile is formatted with alike: the cluster id, one directory id per
        controller and (secured mode) the admin's salted credential; made by the first node formatted."""
        path = self.paths.home(self.group) / "quorum.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            quorum = {
                "cluster_id": _kafka_uuid(),
                "directories": [_kafka_uuid() for _ in self.settings.kafka_hosts],
                "scram": self._admin_scram(),
            }
            write_private(path, json.dumps(quorum))
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def command(self) -> list[str]:
        return self.service_command("kafka.Kafka", str(self.home / "server.properties"))

    def check_health(self) -> None:
        round_trip(kafka_client_config(self.settings, Principal.ADMIN), self.settings.kafka_replication, self.node_id)

    def bootstrap(self) -> None:
        """In secured mode: the other principals' SCRAM credentials and every component's ACLs."""
        if not self.settings.secured:
            return
        from confluent_kafka.admin import AdminClient

        from tickflow.stack.kafka_acls import ensure_users_and_acls

        ensure_users_and_acls(self.settings, AdminClient({**kafka_client_config(self.settings, Principal.ADMIN)}))


def _kafka_uuid() -> str:
    """A Kafka ``Uuid`` as its tools print one: 16 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def round_trip(
    client_config: Mapping[str, str], replication: int = 1, broker: int | None = None, timeout_s: float = 10.0
) -> None:
    """Produce one message and read that very message back; raise if either leg fails, or if ``broker`` (a
    node id) is not among the cluster's brokers. ``client_config`` is where and as whom to connect
    (``kafka_auth.kafka_client_config``); the health topic has ``replication`` replicas (with
    ``min.insync.replicas`` above one, fewer would refuse every ``acks=all`` write)."""
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    quiet: dict[str, str | int | float | bool] = {
        **client_config,
        "log_level": 0,
        "socket.timeout.ms": 5000,
    }
    admin = AdminClient(quiet)
    metadata = admin.list_topics(timeout=timeout_s)
    if broker is not None and broker not in metadata.brokers:
        raise StackError(f"kafka broker {broker} is not among the cluster's brokers")
    if HEALTH_TOPIC not in metadata.topics:
        futures = admin.create_topics([NewTopic(HEALTH_TOPIC, 1, replication)], operation_timeout=timeout_s)
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
    consumer = Consumer({**quiet, "group.id": HEALTH_GROUP, "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(HEALTH_TOPIC, 0, delivered[0])])
        message = consumer.poll(timeout_s)
    finally:
        consumer.close()
    if message is None or message.error() or message.value() != token:
        raise StackError("kafka did not return the health-check message")
