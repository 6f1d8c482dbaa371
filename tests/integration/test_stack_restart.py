"""What the stack holds survives ``tickflow stack down`` and ``up``: tables, schemas, topics.

Only the services that hold them (and the ones that serve them) are restarted: Airflow, PostgreSQL
and HBase keep running, so the test costs one restart of the JVMs it is about.
"""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests.support.kafka import as_admin
from tests.support.stack import hive_query, tickflow
from tickflow.settings import Settings
from tickflow.stack import supervisor
from tickflow.stack.supervisor import State

pytestmark = pytest.mark.integration
# The broker (topics; the registry keeps its schemas there) and the metastore (tables): `stack down` also stops
# what needs them, the registry, Connect and HiveServer2.
DATA_SERVICES = ("kafka", "metastore")


def test_tables_schemas_and_records_survive_a_stack_restart(stack: Settings, tmp_topic: str) -> None:
    table = f"tickflow_test.durable_{uuid.uuid4().hex[:8]}"
    hive_query(
        stack,
        "CREATE DATABASE IF NOT EXISTS tickflow_test",
        f"CREATE TABLE {table} (instrument_id STRING, lot INT) USING parquet",
        f"INSERT INTO {table} VALUES ('MSFT', 100)",
    )
    registry = SchemaRegistryClient(stack.registry_client_config)
    schema = {
        "type": "record",
        "name": "Durable",
        "namespace": "tickflow.test",
        "fields": [{"name": "x", "type": "long"}],
    }
    schema_id = registry.register_schema(f"{tmp_topic}-value", Schema(json.dumps(schema), "AVRO"))
    producer = Producer(as_admin(stack))
    producer.produce(tmp_topic, b"kept", partition=0)
    assert producer.flush(30) == 0

    down = tickflow("stack", "down", *DATA_SERVICES, check=False)
    assert down.returncode == 0, down.stderr
    status = tickflow("stack", "status", check=False)
    assert status.returncode == 1 and "stopped" in status.stdout
    for service in ("registry", "connect", "thriftserver"):  # they need what was stopped
        assert supervisor(stack).status(service).state is State.STOPPED
    up = tickflow("stack", "up", check=False)
    assert up.returncode == 0, up.stderr

    assert hive_query(stack, f"SELECT instrument_id, lot FROM {table}") == [("MSFT", 100)]
    fresh_client = SchemaRegistryClient(stack.registry_client_config)
    assert json.loads(fresh_client.get_schema(schema_id).schema_str)["name"] == "Durable"
    consumer = Consumer({**as_admin(stack), "group.id": tmp_topic})
    consumer.assign([TopicPartition(tmp_topic, 0, 0)])
    message = consumer.poll(30)
    consumer.close()
    assert message is not None and message.value() == b"kept"
