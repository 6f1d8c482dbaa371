"""The HBase sink: md.enriched -> md:latest / md:history through Kafka Connect.

The plugin (``connectors/hbase-sink``, Java) is built and installed by the stack's Connect service;
this module says how the platform runs it (the connector config, built from the same settings as the
stack) and deploys it through Connect's REST API. Idempotent: ``deploy`` is a PUT of the config, so
running it again with the same settings changes nothing, and with new settings updates the tasks.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickflow.hbase.layout import HISTORY, LATEST
from tickflow.settings import Settings
from tickflow.sinks.connect import ConnectClient, ConnectorStatus
from tickflow.topics import ENRICHED, SINK_DLQ

CONNECTOR_CLASS = "io.tickflow.connect.hbase.HBaseSinkConnector"


class HBaseSinkSettings(BaseSettings):
    """How the sink runs (``TICKFLOW_HBASE_SINK_*``)."""

    model_config = SettingsConfigDict(env_prefix="TICKFLOW_HBASE_SINK_", frozen=True)

    name: str = "md-enriched-hbase-sink"
    lag_alert_after_s: float = Field(
        default=60.0,
        gt=0,
        description="How old the oldest record of md.enriched not yet in HBase may get while the sink's lag grows: "
        "exported by tickflow-exporter as the TickflowHBaseSinkLagGrowing alert's threshold.",
    )
    topic: str = ENRICHED.name
    dlq_topic: str = SINK_DLQ.name
    tasks: int = Field(
        default=2,
        ge=1,
        description="tasks.max: one per core of the development machine; each task owns some of the topic's "
        "partitions, one HBase connection and two write buffers.",
    )
    max_poll_records: int = Field(
        default=5000,
        ge=1,
        description="Records per put() call (consumer max.poll.records, default 500): md:latest is conflated per "
        "call, so a backlog drains in fewer, larger writes.",
    )
    flush_interval_ms: int = Field(
        default=200,
        ge=1,
        description="Buffered cells reach HBase at least this often (the HBase client's periodic flush; the "
        "sink's own default is 1000), so latency stays low at rates that do not fill the write buffer.",
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1,
        description="Consumer session timeout (default 45 s): the partitions of a worker killed without a clean "
        "stop go to its replacement this soon.",
    )
    write_buffer_bytes: int = Field(default=4 * 1024 * 1024, ge=1, description="Write buffer of each table's mutator.")
    latest_conflate_ms: int = Field(
        default=200,
        ge=0,
        description="md:latest rows are conflated across the consumer's polls for up to this long: at most one row "
        "per instrument per interval reaches HBase, whatever the rate (0: per poll, one row per record at low rates).",
    )
    deploy_timeout_s: float = Field(default=90.0, gt=0, description="How long deploy waits for RUNNING tasks.")


def connector_config(settings: Settings, sink: HBaseSinkSettings) -> dict[str, str]:
    """The connector's config as Connect's REST API takes it (every value a string)."""
    return {
        "connector.class": CONNECTOR_CLASS,
        "topics": sink.topic,
        "tasks.max": str(sink.tasks),
        # Raw bytes in: the sink decodes the Confluent framing itself, with writer schemas from the registry.
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "schema.registry.url": settings.registry_url,
        "hbase.zookeeper.quorum": settings.host,
        "hbase.zookeeper.property.clientPort": str(settings.ports.hbase_zookeeper),
        "hbase.table.latest": LATEST,
        "hbase.table.history": HISTORY,
        "hbase.write.buffer.bytes": str(sink.write_buffer_bytes),
        "hbase.client.write.buffer.periodicflush.timeout.ms": str(sink.flush_interval_ms),
        "latest.conflate.ms": str(sink.latest_conflate_ms),
        # A record the sink cannot decode or lay out goes to the DLQ with the reason in headers; the rest flows.
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": sink.dlq_topic,
        "errors.deadletterqueue.topic.replication.factor": str(settings.kafka_replication),
        "errors.deadletterqueue.context.headers.enable": "true",
        # Consumer overrides need the worker's connector.client.config.override.policy=All (the stack sets it).
        "consumer.override.max.poll.records": str(sink.max_poll_records),
        "consumer.override.auto.offset.reset": "earliest",
        "consumer.override.session.timeout.ms": str(sink.session_timeout_ms),
        # The stream publishes in transactions: only what it committed, once (Java's default reads aborted ones too).
        "consumer.override.isolation.level": "read_committed",
    }


def deploy(settings: Settings, sink: HBaseSinkSettings) -> ConnectorStatus:
    """Create or update the connector and wait until it and its tasks run with this config."""
    client = ConnectClient(settings.connect_urls)
    config = connector_config(settings, sink)
    client.put_config(sink.name, config)
    return client.wait_running(sink.name, config, sink.tasks, sink.deploy_timeout_s)


def status(settings: Settings, sink: HBaseSinkSettings) -> ConnectorStatus | None:
    return ConnectClient(settings.connect_urls).status(sink.name)


def delete(settings: Settings, sink: HBaseSinkSettings) -> bool:
    return ConnectClient(settings.connect_urls).delete(sink.name)
