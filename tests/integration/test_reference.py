"""Reference data against the real stack: migrations, security master -> SCD2 in Hive, gates, live view."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

from tests.support.kafka import as_admin
from tests.support.reference import INSTRUMENTS, reset_secmaster
from tests.support.stack import hive_query, tickflow
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.reference.quality import QualityGateFailed
from tickflow.reference.refresh import refresh_all
from tickflow.reference.sources import secmaster_connection
from tickflow.reference.views import reference_history
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.stream.app import build_query
from tickflow.stream.settings import StreamSettings

pytestmark = pytest.mark.integration


def current_view(settings: Settings) -> list[tuple[object, ...]]:
    return hive_query(
        settings, "SELECT instrument_id, sector, tick_size, reference_version FROM ref.instruments ORDER BY 1"
    )


def test_migrations_applied_twice_change_nothing_the_second_time(reference_data: Settings) -> None:
    def tables() -> list[tuple[object, ...]]:
        return sorted(row for db in ("ref", "ops") for row in hive_query(reference_data, f"SHOW TABLES IN {db}"))

    before = tables()
    result = tickflow("hive", "migrate", check=False)
    assert result.returncode == 0
    migrations = len(list(reference_data.hive_ddl_dir.glob("V*.hql")))
    assert f"0 applied, {migrations} already applied" in result.stderr
    assert tables() == before
    assert hive_query(reference_data, "SELECT count(*) FROM tickflow_meta.schema_migrations") == [(migrations,)]


def test_a_change_in_the_security_master_closes_the_old_row_and_opens_a_new_one(
    reference_data: Settings, spark
) -> None:  # type: ignore[no-untyped-def]
    refresh_all(spark, reference_data)
    target = current_view(reference_data)[7][0]
    with secmaster_connection(reference_data) as connection:
        old_sector = connection.execute(
            "SELECT sector FROM instruments WHERE instrument_id = %s", (target,)
        ).fetchone()[0]
        connection.execute(
            "UPDATE instruments SET sector = 'Test Sector', updated_at = now() WHERE instrument_id = %s", (target,)
        )
    try:
        before_change = datetime.utcnow()
        time.sleep(1)
        _, instruments_report = refresh_all(spark, reference_data)
        assert instruments_report.opened == 1 and instruments_report.closed == 1

        rows = spark.sql(
            f"SELECT sector, is_current, valid_from, valid_to FROM ref.instruments_history "
            f"WHERE instrument_id = '{target}' ORDER BY valid_from"
        ).collect()
        assert [(r.sector, r.is_current) for r in rows[-2:]] == [(old_sector, False), ("Test Sector", True)]
        assert rows[-2].valid_to == rows[-1].valid_from and rows[-1].valid_to is None
        assert dict((r[0], r[1]) for r in current_view(reference_data))[target] == "Test Sector"

        # The history a backfill binds gives the attributes in force at a past time.
        moment = before_change.strftime("%Y-%m-%d %H:%M:%S.%f")
        in_force = reference_history(spark)["ref_instruments"].where(
            f"in_force_from <= TIMESTAMP '{moment}' AND (in_force_to IS NULL OR TIMESTAMP '{moment}' < in_force_to)"
        )
        past = {r.instrument_id: r.sector for r in in_force.collect()}
        assert past[target] == old_sector
        assert len(past) == INSTRUMENTS
    finally:
        reset_secmaster(reference_data)


def test_duplicate_keys_are_rejected_and_the_current_view_is_unchanged(reference_data: Settings, spark) -> None:  # type: ignore[no-untyped-def]
    before = current_view(reference_data)
    with secmaster_connection(reference_data) as connection:
        connection.execute(
            "INSERT INTO instruments (instrument_id, symbol, name, exchange, currency, asset_class, sector, tick_size, "
            "lot_size) SELECT instrument_id, symbol, name, exchange, currency, asset_class, 'Dup', tick_size, lot_size "
            "FROM instruments ORDER BY instrument_id LIMIT 2"
        )
    try:
        with pytest.raises(QualityGateFailed, match="2 duplicated instrument_id values"):
            refresh_all(spark, reference_data)
        assert current_view(reference_data) == before
        rejected = hive_query(
            reference_data,
            "SELECT status, message FROM ops.reference_loads WHERE dataset = 'instruments' "
            "ORDER BY finished_at DESC LIMIT 1",
        )
        assert rejected[0][0] == "rejected" and "duplicated instrument_id" in rejected[0][1]
    finally:
        reset_secmaster(reference_data)


def test_a_collapsed_load_is_rejected_and_a_red_command_says_why(reference_data: Settings) -> None:
    before = current_view(reference_data)
    with secmaster_connection(reference_data) as connection:
        connection.execute(
            "DELETE FROM instruments WHERE instrument_id IN "
            "(SELECT instrument_id FROM instruments ORDER BY 1 LIMIT 400)"
        )
    try:
        result = tickflow("reference", "refresh", check=False)
        assert result.returncode == 1
        assert "instruments load was rejected" in result.stderr and "row count" in result.stderr
        assert "Traceback" not in result.stderr
        assert current_view(reference_data) == before
    finally:
        reset_secmaster(reference_data)


def test_the_refresh_command_reports_its_load_and_the_running_app_sees_it_at_its_next_micro_batch(
    reference_data: Settings, spark, topics: dict[str, str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """``tickflow reference refresh`` prints row counts and its runtime; the enrichment app's stream-static join
    asks which load the reference views point at each micro-batch, so it sees the new load with no restart."""
    target = current_view(reference_data)[3][0]
    schema = load("tickflow.md.MarketEvent", reference_data.schemas_dir)
    registry = SchemaRegistryClient(reference_data.registry_client_config)
    schema_id = registry.register_schema(f"{topics['events']}-value", Schema(schema.text, "AVRO"))
    encode = compile_encoder(schema.definition, prefix=confluent_prefix(int(schema_id)))
    stream = StreamSettings(
        input_topic=topics["events"], output_topic=topics["enriched"], dlq_topic=topics["dlq"],
        checkpoint_dir=tmp_path / "checkpoint", progress_file=tmp_path / "progress.json", trigger_interval="1 second",
    )  # fmt: skip
    query, _ = build_query(spark, reference_data, stream)
    producer = Producer(as_admin(reference_data))
    consumer = Consumer(
        {
            **as_admin(reference_data),
            "group.id": f"t-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topics["enriched"]])
    deserialize = AvroDeserializer(registry)
    sectors: dict[float, str] = {}

    def send_and_wait(price: float, expected: str) -> None:
        event = {"event_id": f"r{price}", "instrument_id": target, "source": "prices", "sequence": int(price),
                 "event_time": time.time_ns() // 1000, "last_price": price}  # fmt: skip
        producer.produce(topics["events"], encode(event), target)
        producer.flush(10)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and price not in sectors:
            for message in consumer.consume(100, 1.0):
                if message.error() is None:
                    record = deserialize(message.value(), None)
                    sectors[record["last_price"]] = record["sector"]
            assert query.exception() is None
        assert sectors.get(price) == expected

    try:
        original = dict((r[0], r[1]) for r in current_view(reference_data))[target]
        send_and_wait(1.0, original)
        with secmaster_connection(reference_data) as connection:
            connection.execute(
                "UPDATE instruments SET sector = 'Refreshed', updated_at = now() WHERE instrument_id = %s", (target,)
            )
        refreshed = tickflow("reference", "refresh", check=False)  # another Spark application
        assert refreshed.returncode == 0, refreshed.stderr
        assert "instruments load" in refreshed.stdout and f"{INSTRUMENTS} rows in" in refreshed.stdout
        assert "reference refresh done in" in refreshed.stderr
        assert len(current_view(reference_data)) == INSTRUMENTS
        send_and_wait(2.0, "Refreshed")
        assert query.isActive  # same query, no restart
    finally:
        query.stop()
        consumer.close()
        reset_secmaster(reference_data)
