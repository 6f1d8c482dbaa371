"""Secured mode's Kafka users and ACLs: each component may do what it does, and nothing else.

Created at every ``stack up`` by the Kafka service's bootstrap, as ``admin`` (the broker's super user), so
both are idempotent: a SCRAM upsert with the password from the principal's credential file (a deleted file
means a new password, taken over here), and ``CreateAcls`` of bindings that exist already changes nothing.

The tests' own topics are all named ``test.*`` (``tests/support/stack.py``): the components that the tests run
on them (simulators, the stream, Connect, the backfill, Airflow's checks) may use that prefix too. No other
principal (the registry) may, and it matches no platform topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

# confluent_kafka.admin imports these without re-exporting them (no __all__), which strict mypy refuses.
from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from tickflow.kafka_auth import (
    BACKFILL_GROUPS,
    HEALTH_GROUP,
    SCRAM_ITERATIONS,
    TRANSACTIONAL_ID_PREFIX,
    Principal,
    kafka_password,
)
from tickflow.settings import Settings
from tickflow.stack.connect import CONNECT_GROUP
from tickflow.stack.registry import REGISTRY_GROUPS
from tickflow.topics import DLQ, ENRICHED, EVENTS, SHOWCASE, SINK_DLQ, STREAM_COMMITS

TEST_TOPICS = "test."
STREAM_GROUPS = "tickflow-enrichment"  # the stream's committed group and the prefix of Spark's own group ids
# With exactly.once.source.support=enabled the worker's leader writes the config topic in transactions with this
# transactional id (DistributedConfig.transactionalProducerId: "connect-cluster-" + group.id).
CONNECT_LEADER_TXN = f"connect-cluster-{CONNECT_GROUP}"
CONNECT_TOPICS = "_connect."  # the worker's config, offsets and status topics
CONNECTOR_GROUPS = "connect-"  # a sink connector's consumer group is connect-<connector name>
DEBEZIUM_HEARTBEATS = "__debezium-heartbeat"
REGISTRY_TOPICS = "kafkasql-"  # Apicurio's journal and snapshots topics (kafkasql-journal, kafkasql-snapshots)
REGISTRY_EVENTS = "registry-events"  # Apicurio creates it at start (apicurio.events.kafka.topic)

LITERAL, PREFIXED = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
TOPIC, GROUP, TXN = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
READ, WRITE, DESCRIBE, CREATE = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE
DESCRIBE_CONFIGS = AclOperation.DESCRIBE_CONFIGS
ALLOW = AclPermissionType.ALLOW


@dataclass(frozen=True)
class Grant:
    """Operations one principal is allowed on the resources a name (or a prefix of names) matches."""

    principal: Principal
    resource: ResourceType
    name: str
    operations: tuple[AclOperation, ...]
    pattern: ResourcePatternType = LITERAL

    def bindings(self) -> list[AclBinding]:
        user = f"User:{self.principal.value}"
        return [
            AclBinding(self.resource, self.name, self.pattern, user, "*", operation, ALLOW)
            for operation in self.operations
        ]


def grants() -> list[Grant]:
    simulator, stream, connect, airflow = Principal.SIMULATOR, Principal.STREAM, Principal.CONNECT, Principal.AIRFLOW
    registry, backfill, monitor = Principal.REGISTRY, Principal.BACKFILL, Principal.MONITOR
    return [
        Grant(simulator, TOPIC, EVENTS.name, (WRITE, DESCRIBE)),
        Grant(simulator, TOPIC, SHOWCASE.name, (WRITE, DESCRIBE)),
        Grant(simulator, TOPIC, TEST_TOPICS, (WRITE, DESCRIBE), PREFIXED),
        Grant(stream, TOPIC, EVENTS.name, (READ, DESCRIBE)),
        Grant(stream, TOPIC, ENRICHED.name, (WRITE, DESCRIBE)),
        Grant(stream, TOPIC, DLQ.name, (WRITE, DESCRIBE)),
        # The exactly-once sink: a transaction per task (its rows, dead letters and the batch's marker), the markers
        # read back when the query starts.
        Grant(stream, TXN, TRANSACTIONAL_ID_PREFIX, (WRITE, DESCRIBE), PREFIXED),
        Grant(stream, TOPIC, STREAM_COMMITS.name, (READ, WRITE, DESCRIBE)),
        Grant(stream, GROUP, STREAM_GROUPS, (READ, DESCRIBE), PREFIXED),
        Grant(stream, TOPIC, TEST_TOPICS, (READ, WRITE, DESCRIBE), PREFIXED),
        Grant(connect, TOPIC, CONNECT_TOPICS, (READ, WRITE, DESCRIBE, CREATE, DESCRIBE_CONFIGS), PREFIXED),
        Grant(connect, GROUP, CONNECT_GROUP, (READ, DESCRIBE)),
        Grant(connect, GROUP, CONNECTOR_GROUPS, (READ, DESCRIBE), PREFIXED),
        Grant(connect, TOPIC, ENRICHED.name, (READ, DESCRIBE)),
        Grant(connect, TOPIC, SINK_DLQ.name, (WRITE, DESCRIBE)),
        # The trades source writes md.events in transactions (exactly once, KIP-618): its task's transactional
        # id is <group.id>-<connector>-<task> (Worker.taskTransactionalId), which the worker's leader also
        # fences with before a task starts; the leader's own writes to the config topic are transactional too.
        Grant(connect, TOPIC, EVENTS.name, (WRITE, DESCRIBE)),
        Grant(connect, TXN, CONNECT_GROUP, (WRITE, DESCRIBE), PREFIXED),
        Grant(connect, TXN, CONNECT_LEADER_TXN, (WRITE, DESCRIBE)),
        Grant(connect, TOPIC, DEBEZIUM_HEARTBEATS, (WRITE, DESCRIBE, CREATE), PREFIXED),
        # CREATE: a sink's dead-letter topic that does not exist yet is created by the worker (the tests' are).
        Grant(connect, TOPIC, TEST_TOPICS, (READ, WRITE, DESCRIBE, CREATE), PREFIXED),
        # Airflow's checks: metadata, end offsets, the consumer groups' committed offsets (lag), a peek at records.
        Grant(airflow, TOPIC, "md.", (READ, DESCRIBE), PREFIXED),
        Grant(airflow, GROUP, "tickflow", (DESCRIBE,), PREFIXED),
        Grant(airflow, GROUP, "tickflow-airflow", (READ, DESCRIBE)),
        Grant(airflow, GROUP, HEALTH_GROUP, (READ, DESCRIBE)),
        Grant(airflow, TOPIC, TEST_TOPICS, (READ, DESCRIBE), PREFIXED),
        # The backfill reads md.events (Spark's batch source, offsets-for-times) and writes HBase and Hive only.
        Grant(backfill, TOPIC, EVENTS.name, (READ, DESCRIBE)),
        Grant(backfill, TOPIC, ENRICHED.name, (READ, DESCRIBE)),  # target=check compares the live output
        Grant(backfill, GROUP, BACKFILL_GROUPS, (READ, DESCRIBE), PREFIXED),
        Grant(backfill, TOPIC, TEST_TOPICS, (READ, DESCRIBE), PREFIXED),
        # tickflow-exporter: the stream's and the connectors' committed offsets (lag), the oldest unread record of
        # each lagging partition and md.dlq's reasons, read under a group that never commits.
        Grant(monitor, TOPIC, "md.", (READ, DESCRIBE), PREFIXED),
        Grant(monitor, GROUP, "tickflow", (DESCRIBE,), PREFIXED),
        Grant(monitor, GROUP, CONNECTOR_GROUPS, (DESCRIBE,), PREFIXED),
        Grant(monitor, GROUP, HEALTH_GROUP, (READ, DESCRIBE)),
        Grant(registry, TOPIC, REGISTRY_TOPICS, (READ, WRITE, DESCRIBE, CREATE, DESCRIBE_CONFIGS), PREFIXED),
        Grant(registry, TOPIC, REGISTRY_EVENTS, (WRITE, DESCRIBE, CREATE, DESCRIBE_CONFIGS)),
        Grant(registry, GROUP, REGISTRY_GROUPS, (READ, DESCRIBE), PREFIXED),
    ]


def acl_bindings(selected: Iterable[Grant] | None = None) -> list[AclBinding]:
    return [binding for grant in (grants() if selected is None else selected) for binding in grant.bindings()]


def ensure_users_and_acls(settings: Settings, admin: AdminClient, timeout_s: float = 30.0) -> None:
    """Give every principal but ``admin`` its SCRAM credential (the password in its file) and every grant its
    ACLs; ``admin`` was given its credential when the storage was formatted."""
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            principal.value,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
            kafka_password(settings, principal).encode(),
        )
        for principal in Principal
        if principal is not Principal.ADMIN
    ]
    for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s).values():
        future.result()
    for future in admin.create_acls(acl_bindings(), request_timeout=timeout_s).values():
        future.result()
