"""The pytest plugin of tests that need the real local stack (integration and e2e): fixtures and helpers.

The stack is started once per session through the same command a person uses
(``tickflow stack up``). A stack that was entirely stopped is stopped again at the end of the
session; one that was running, even in part, is completed if needed and left running.
Registered in tests/conftest.py.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.kafka import as_admin
from tickflow.settings import Settings
from tickflow.stack import supervisor
from tickflow.stack.supervisor import State

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def tickflow(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``tickflow`` command line as a person would."""
    return subprocess.run(
        [sys.executable, "-m", "tickflow.cli", *args], capture_output=True, text=True, check=check, env=env
    )


def _stack_up(settings: Settings, services: list[str]) -> Iterator[Settings]:
    """Reuse the services (and their dependencies) when all are healthy, else start what is missing.
    At the end, stop them only if every one was stopped before: a stack somebody was using, even half
    up, is left running. With no names: the whole stack."""
    stack = supervisor(settings)
    needed = [service.name for service in stack.ordered(services or None)]
    states = {stack.status(name).state for name in needed}
    if states != {State.HEALTHY}:
        result = tickflow("stack", "up", *services, check=False)
        if result.returncode != 0:
            pytest.fail(f"tickflow stack up {' '.join(services)} failed:\n{result.stdout}\n{result.stderr}")
    if "hbase-thrift" in needed:  # the md tables, as a person creates them after `stack up`
        migrated = tickflow("hbase", "migrate", check=False)
        if migrated.returncode != 0:
            pytest.fail(f"tickflow hbase migrate failed:\n{migrated.stdout}\n{migrated.stderr}")
    yield settings
    if states == {State.STOPPED}:
        tickflow("stack", "down", *(needed if services else []), check=False)


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    yield from _stack_up(settings, [])


@pytest.fixture(scope="session")
def hbase_stack(settings: Settings) -> Iterator[Settings]:
    """HBase, its Thrift server and the schema registry (with the Kafka it stores schemas in): md:history
    cells are Avro records framed with registry ids, so reading or writing them takes the registry. Enough
    for the HBase and serving tests, started alone beside another checkout's stack, or found healthy when
    the whole stack already runs (CI)."""
    yield from _stack_up(settings, ["hbase", "hbase-thrift", "registry"])


@pytest.fixture(scope="session")
def postgres_stack(settings: Settings) -> Iterator[Settings]:
    """PostgreSQL alone: enough for trade capture (booking, and the objects Debezium streams from)."""
    yield from _stack_up(settings, ["postgres"])


@pytest.fixture
def tmp_topic(stack: Settings) -> Iterator[str]:
    """A fresh topic (3 partitions) for one test, deleted afterwards."""
    name = f"test.{uuid.uuid4().hex[:12]}"
    admin = AdminClient(as_admin(stack))
    admin.create_topics([NewTopic(name, 3, stack.kafka_replication)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


@pytest.fixture
def topics(stack: Settings) -> Iterator[dict[str, str]]:
    """Fresh events, enriched and dlq topics (3 partitions each) for one stream test."""
    names = {kind: f"test.{kind}.{uuid.uuid4().hex[:8]}" for kind in ("events", "enriched", "dlq")}
    admin = AdminClient(as_admin(stack))
    for future in admin.create_topics([NewTopic(n, 3, stack.kafka_replication) for n in names.values()]).values():
        future.result(30)
    yield names
    admin.delete_topics(list(names.values()))


@pytest.fixture(scope="session")
def spark(stack: Settings) -> Iterator[SparkSession]:
    """One Spark application for the test session, on the shared metastore."""
    from tickflow.spark import spark_session
    from tickflow.stream.app import spark_conf as stream_conf
    from tickflow.stream.settings import StreamSettings

    session = spark_session(stack, "tickflow-tests", extra=stream_conf(StreamSettings()))
    yield session
    session.stop()
    # py4j says goodbye at interpreter exit, when pytest has closed the stream its handler writes to.
    logging.getLogger("py4j").setLevel(logging.WARNING)


def hive_query(settings: Settings, *statements: str) -> list[tuple[object, ...]]:
    """Run statements through HiveServer2 (the Spark Thrift Server); return the last one's rows."""
    from tickflow.warehouse import run_statements

    return run_statements(settings, statements)
