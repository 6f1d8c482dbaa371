"""The trades source: trade capture's PostgreSQL table -> ``md.events`` through Debezium in Kafka Connect.

Debezium's PostgreSQL connector (installed by the stack's Connect service) streams the changes of
``trade_capture.trades`` from the slot tickflow creates (``tickflow.sources.trade_capture``). Two
parts of tickflow's own plugin (``connectors/marketevent-connect``) turn them into what the Python
producers write: a transform maps a change to a MarketEvent with key = instrument id and sets the
partition as librdkafka's partitioner would; a converter writes it as Confluent framing with the
schema registered under ``md.events-value``. The transform also names the topic (``md.events``) and drops
what is no trade print: heartbeats, tombstones, truncates, other tables (see its README).

Exactly once (KIP-618): the records of a poll and the connector's offsets commit in one Kafka
transaction, so after a kill -9 read_committed consumers see every trade once. It needs the
worker's ``exactly.once.source.support=enabled``, which the stack sets.

The database password is not in the config (which ``GET /connectors/<name>/config`` shows): the
connector names a key of a properties file that the worker reads through its FileConfigProvider.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickflow.runtime.postgres import postgres_password
from tickflow.settings import Settings
from tickflow.sinks.connect import ConnectClient, ConnectorStatus
from tickflow.sources.trade_capture import DATABASE, PUBLICATION, SLOT, TABLE
from tickflow.topics import EVENTS

CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
# connectors/marketevent-connect: Debezium's change of a trade -> a MarketEvent on md.events (its topic, key
# and librdkafka's partition), written in the Confluent wire format with the registered md.events-value.
TRANSFORM_CLASS = "io.tickflow.connect.marketevent.DebeziumTradeToMarketEvent"
CONVERTER_CLASS = "io.tickflow.connect.marketevent.MarketEventAvroConverter"
FILE_PROVIDER = "file"  # the worker's config.providers name for FileConfigProvider


class TradesSourceSettings(BaseSettings):
    """How the trades source runs (``TICKFLOW_TRADES_SOURCE_*``)."""

    model_config = SettingsConfigDict(env_prefix="TICKFLOW_TRADES_SOURCE_", frozen=True)

    name: str = "trades-postgres-source"
    topic: str = EVENTS.name
    topic_prefix: str = Field(
        default="tickflow.trades",
        description="Debezium's topic.prefix: the key of the connector's offsets and the start of its topic names.",
    )
    partitions: int = Field(
        default=EVENTS.partitions, ge=1, description="Partitions of md.events the transform spreads over."
    )
    poll_interval_ms: int = Field(
        default=50, ge=0, description="How long Debezium waits for changes before a poll returns (default 500)."
    )
    heartbeat_interval_ms: int = Field(
        default=10_000,
        ge=0,
        description="Heartbeats let the slot's confirmed position advance while no trade is booked, so the WAL of "
        "the cluster's other databases is not kept behind it.",
    )
    errors_max_retries: int = Field(
        default=10,
        ge=-1,
        description="Debezium retries a lost database forever by default, with the task RUNNING; a bound makes an "
        "outage a FAILED task that status shows.",
    )
    deploy_timeout_s: float = Field(default=90.0, gt=0, description="How long deploy waits for the RUNNING task.")


def secrets_file(settings: Settings) -> Path:
    """The properties file with the database password, read by the worker (never shown by Connect's API)."""
    return settings.root / "connect" / "secrets" / "trades-source.properties"


def write_secrets(settings: Settings) -> Path:
    path = secrets_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(f"password={postgres_password(settings)}\n")
    return path


def connector_config(settings: Settings, source: TradesSourceSettings) -> dict[str, str]:
    """The connector's config as Connect's REST API takes it (every value a string)."""
    return {
        "connector.class": CONNECTOR_CLASS,
        "tasks.max": "1",  # a PostgreSQL slot has one reader
        "database.hostname": settings.host,
        "database.port": str(settings.ports.postgres),
        "database.user": "tickflow",
        "database.password": f"${{{FILE_PROVIDER}:{secrets_file(settings)}:password}}",
        "database.dbname": DATABASE,
        "topic.prefix": source.topic_prefix,
        "table.include.list": TABLE,
        # pgoutput is built into PostgreSQL; Debezium's default decoder is a server extension Debian lacks.
        "plugin.name": "pgoutput",
        # tickflow creates both (publication first); autocreate would need a superuser and take every table.
        "publication.name": PUBLICATION,
        "publication.autocreate.mode": "disabled",
        "slot.name": SLOT,
        "slot.drop.on.stop": "false",
        # The slot keeps WAL from its creation: stream from there, never re-read the table.
        "snapshot.mode": "no_data",
        "tombstones.on.delete": "false",  # a null value in md.events would be undecodable, its key an instrument
        "heartbeat.interval.ms": str(source.heartbeat_interval_ms),
        "lsn.flush.mode": "connector_and_driver",
        "poll.interval.ms": str(source.poll_interval_ms),
        "errors.max.retries": str(source.errors_max_retries),
        "exactly.once.support": "required",
        "transaction.boundary": "poll",
        "decimal.handling.mode": "double",  # the SMT refuses a NUMERIC price otherwise
        "skipped.operations": "t",  # a TRUNCATE is no trade print
        "transforms": "marketevent",
        "transforms.marketevent.type": TRANSFORM_CLASS,
        "transforms.marketevent.partitions": str(source.partitions),
        "transforms.marketevent.topic": source.topic,
        "transforms.marketevent.table": TABLE,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": CONVERTER_CLASS,
        "value.converter.schema.registry.url": settings.registry_url,
        "value.converter.subject": f"{source.topic}-value",
    }


def deploy(settings: Settings, source: TradesSourceSettings) -> ConnectorStatus:
    """Make PostgreSQL, Kafka and the registry ready, then create or update the connector and wait until
    its task runs with this config."""
    from tickflow.schemas import register_all
    from tickflow.sources.trade_capture import prepare
    from tickflow.topics import create_topics

    prepare(settings)
    create_topics(settings)
    register_all(settings)  # the converter reads md.events-value at start and fails without it
    write_secrets(settings)
    client = ConnectClient(settings.connect_urls)
    config = connector_config(settings, source)
    client.put_config(source.name, config)
    return client.wait_running(source.name, config, 1, source.deploy_timeout_s)


def status(settings: Settings, source: TradesSourceSettings) -> ConnectorStatus | None:
    return ConnectClient(settings.connect_urls).status(source.name)


def delete(settings: Settings, source: TradesSourceSettings) -> bool:
    """Delete the connector; its offsets stay in Connect's offsets topic and the slot keeps the WAL."""
    return ConnectClient(settings.connect_urls).delete(source.name)
