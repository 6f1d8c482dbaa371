"""The HBase sink's connector config: what Connect gets, built from the stack's settings."""

from __future__ import annotations

import pytest

from tickflow.settings import Settings, StackPorts
from tickflow.sinks.hbase import CONNECTOR_CLASS, HBaseSinkSettings, connector_config


@pytest.fixture
def config() -> dict[str, str]:
    return connector_config(Settings(), HBaseSinkSettings())


def test_the_sink_reads_md_enriched_as_raw_bytes_and_decodes_with_the_registry(config: dict[str, str]) -> None:
    assert config["connector.class"] == CONNECTOR_CLASS
    assert config["topics"] == "md.enriched"
    assert config["value.converter"] == "org.apache.kafka.connect.converters.ByteArrayConverter"
    assert config["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert config["schema.registry.url"] == "http://127.0.0.1:8081/apis/ccompat/v7"


def test_hbase_is_reached_through_the_stacks_zookeeper_and_tables(config: dict[str, str]) -> None:
    assert config["hbase.zookeeper.quorum"] == "127.0.0.1"
    assert config["hbase.zookeeper.property.clientPort"] == "2181"
    assert (config["hbase.table.latest"], config["hbase.table.history"]) == ("md:latest", "md:history")


def test_ports_follow_the_settings() -> None:
    settings = Settings(ports=StackPorts(hbase_zookeeper=12181, registry=18081))
    config = connector_config(settings, HBaseSinkSettings())
    assert config["hbase.zookeeper.property.clientPort"] == "12181"
    assert config["schema.registry.url"] == "http://127.0.0.1:18081/apis/ccompat/v7"


def test_bad_records_go_to_the_sink_dlq_with_their_reason(config: dict[str, str]) -> None:
    assert config["errors.tolerance"] == "all"
    assert config["errors.deadletterqueue.topic.name"] == "md.enriched.dlq"
    assert config["errors.deadletterqueue.context.headers.enable"] == "true"
    # one broker: Connect's default replication factor (3) could not create the topic
    assert config["errors.deadletterqueue.topic.replication.factor"] == "1"


def test_tasks_and_consumer_overrides_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKFLOW_HBASE_SINK_TASKS", "3")
    monkeypatch.setenv("TICKFLOW_HBASE_SINK_MAX_POLL_RECORDS", "1000")
    config = connector_config(Settings(), HBaseSinkSettings())
    assert config["tasks.max"] == "3"
    assert config["consumer.override.max.poll.records"] == "1000"
    assert connector_config(Settings(), HBaseSinkSettings(tasks=1))["tasks.max"] == "1"


def test_every_value_is_a_string_as_connects_rest_api_wants(config: dict[str, str]) -> None:
    assert all(isinstance(value, str) for value in config.values())
