"""The trades source's connector config: Debezium on the objects tickflow creates, into md.events."""

from __future__ import annotations

from pathlib import Path

from tickflow.settings import Settings, StackPorts
from tickflow.sources.trades_connector import TradesSourceSettings, connector_config, secrets_file, write_secrets


def config(tmp_path: Path, **source: object) -> dict[str, str]:
    settings = Settings(state_dir=tmp_path, ports=StackPorts(postgres=5433, registry=8082))
    return connector_config(settings, TradesSourceSettings(**source))  # type: ignore[arg-type]


def test_debezium_reads_the_publication_and_slot_tickflow_created_with_pgoutput(tmp_path: Path) -> None:
    found = config(tmp_path)
    assert all(isinstance(v, str) for v in found.values())
    assert found["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert found["tasks.max"] == "1"
    assert (found["database.hostname"], found["database.port"], found["database.dbname"]) == ("127.0.0.1", "5433",
                                                                                              "trades")  # fmt: skip
    assert found["table.include.list"] == "trade_capture.trades"
    assert found["plugin.name"] == "pgoutput"
    assert (found["publication.name"], found["slot.name"]) == ("tickflow_trades", "tickflow_trades")
    assert found["publication.autocreate.mode"] == "disabled"
    assert found["snapshot.mode"] == "no_data"
    assert found["tombstones.on.delete"] == "false"
    assert found["errors.max.retries"] == "10"
    assert (found["exactly.once.support"], found["transaction.boundary"]) == ("required", "poll")


def test_the_password_is_a_file_variable_the_worker_resolves(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, postgres_password="s3cret")  # type: ignore[arg-type]
    found = connector_config(settings, TradesSourceSettings())
    assert "s3cret" not in str(found)
    assert found["database.password"] == f"${{file:{secrets_file(settings)}:password}}"
    path = write_secrets(settings)
    assert path.read_text() == "password=s3cret\n"
    assert path.stat().st_mode & 0o777 == 0o600


def test_changes_become_market_events_in_md_events_keyed_and_framed_like_the_python_producers(
    tmp_path: Path,
) -> None:
    found = config(tmp_path)
    assert found["transforms"] == "marketevent"
    assert found["transforms.marketevent.type"] == "io.tickflow.connect.marketevent.DebeziumTradeToMarketEvent"
    assert found["transforms.marketevent.partitions"] == "12"
    assert found["transforms.marketevent.topic"] == "md.events"
    assert found["transforms.marketevent.table"] == "trade_capture.trades"
    assert found["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert found["value.converter"] == "io.tickflow.connect.marketevent.MarketEventAvroConverter"
    assert found["value.converter.schema.registry.url"] == "http://127.0.0.1:8082/apis/ccompat/v7"
    assert found["value.converter.subject"] == "md.events-value"


def test_the_source_settings_move_the_prefix_and_topic(tmp_path: Path) -> None:
    found = config(tmp_path, topic_prefix="desk1", topic="md.events.test", partitions=3)
    assert found["topic.prefix"] == "desk1"
    assert found["transforms.marketevent.topic"] == "md.events.test"
    assert found["value.converter.subject"] == "md.events.test-value"
    assert found["transforms.marketevent.partitions"] == "3"
