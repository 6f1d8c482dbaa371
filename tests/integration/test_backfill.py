"""The backfill against the real stack: a sector change in the middle of the range, HBase and the archive, and
the warm-up from a state snapshot."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests.support.kafka import as_admin
from tests.support.reference import reset_secmaster
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.backfill.job import ARCHIVE, run_backfill
from tickflow.backfill.request import BackfillRequest, BackfillSettings, InvalidBackfill
from tickflow.fill.semantics import FILL_FIELDS, InstrumentState, fill_columns
from tickflow.fill.snapshot import INDEX_TABLE, SNAPSHOT_TABLE, CommittedState, write_snapshot
from tickflow.hbase.store import MarketDataStore
from tickflow.reference.refresh import refresh_all
from tickflow.reference.sources import secmaster_connection
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.warehouse import run_statements

pytestmark = pytest.mark.integration


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def test_a_backfill_across_a_sector_change_enriches_each_event_as_of_its_time(
    reference_data: Settings, spark: Any, topics: dict[str, str]
) -> None:
    settings = reference_data
    instrument = f"XTST:BF{uuid.uuid4().hex[:6].upper()}"
    with secmaster_connection(settings) as connection:
        connection.execute(
            "INSERT INTO instruments (instrument_id, symbol, name, exchange, currency, asset_class, sector, tick_size, "
            "lot_size) SELECT %s, %s, 'Backfill test', exchange, currency, asset_class, 'Before', tick_size, lot_size "
            "FROM instruments ORDER BY instrument_id LIMIT 1",
            (instrument, instrument.split(":")[1]),
        )
    try:
        refresh_all(spark, settings)
        time.sleep(2)
        with secmaster_connection(settings) as connection:
            connection.execute(
                "UPDATE instruments SET sector = 'After', updated_at = now() WHERE instrument_id = %s", (instrument,)
            )
        refresh_all(spark, settings)
        history = spark.sql(
            f"SELECT sector, valid_from FROM ref.instruments_history WHERE instrument_id = '{instrument}' "
            "ORDER BY valid_from"
        ).collect()
        assert [r.sector for r in history] == ["Before", "After"]
        opened = history[0].valid_from.replace(tzinfo=UTC)
        change = history[1].valid_from.replace(tzinfo=UTC)  # Spark gives UTC wall time (session time zone UTC)
        assert change - opened >= timedelta(seconds=2)

        # Events around the change: one before the range (warms the fill up), four in it, one after it, and
        # events of another instrument on the same topic, which the backfill must leave alone.
        start, end = change - timedelta(seconds=1), change + timedelta(seconds=1)
        ms = timedelta(milliseconds=1)
        events = [
            (start - timedelta(seconds=0.5), {"bid_price": 10.0, "ask_price": 10.2, "bid_size": 100}),
            (start, {"last_price": 10.1}),
            (change - ms, {"bid_price": 10.05}),
            (change, {"trade_id": "t1", "trade_price": 10.1, "trade_size": 7, "trade_side": "buy"}),
            (change + 500 * ms, {"ask_price": 10.15, "ask_size": 50}),
            (end, {"last_price": 99.0}),
        ]
        schema = load("tickflow.md.MarketEvent", settings.schemas_dir)
        registry = SchemaRegistryClient(settings.registry_client_config)
        schema_id = registry.register_schema(f"{topics['events']}-value", Schema(schema.text, "AVRO"))
        encode = compile_encoder(schema.definition, prefix=confluent_prefix(int(schema_id)))
        producer = Producer(as_admin(settings))
        records = []
        placed: dict[int, list[tuple[int, int]]] = {}  # partition -> (event number, offset)
        for number, (moment, fields) in enumerate(events):
            for who in (instrument, "XXXX:OTHER"):
                record = {"event_id": f"{who}-{number}", "instrument_id": who, "source": "prices",
                          "sequence": number, "event_time": micros(moment), **fields}  # fmt: skip
                producer.produce(
                    topics["events"], encode(record), who, timestamp=micros(moment) // 1000,
                    on_delivery=lambda _, m, n=number: placed.setdefault(m.partition(), []).append((n, m.offset())),
                )  # fmt: skip
                if who == instrument:
                    records.append({**record, "offset": number, "ingest_time": 0})
        producer.flush(30)

        options = BackfillSettings(input_topic=topics["events"], chunk_events=4)  # several chunks, even here
        with pytest.raises(InvalidBackfill, match="XTST:NOPE is not in the reference data"):
            run_backfill(spark, settings, BackfillRequest.parse(start, end, [instrument, "XTST:NOPE"]), options)
        empty = BackfillRequest.parse(start - timedelta(days=2), start - timedelta(days=1), [instrument])
        with pytest.raises(InvalidBackfill, match="has no records between"):
            run_backfill(spark, settings, empty, options)

        # A row of the same day outside the range must survive the archive's partition rewrite.
        keep_time = (start - timedelta(minutes=5)).replace(tzinfo=None)
        spark.createDataFrame(
            [(instrument, keep_time, '{"kept": true}', keep_time.date())], spark.table(ARCHIVE).schema
        ).write.insertInto(ARCHIVE)

        request = BackfillRequest.parse(start, end, [instrument], "both")
        lines: list[str] = []
        report = run_backfill(spark, settings, request, options, lines.append)
        assert report.rows_written == 4 and report.rejected == 0 and report.chunks > 1
        assert any("records/s" in line and "rows written" in line for line in lines)
        assert any("the warm-up reads from the earliest offset" in line for line in lines)  # no snapshot of it

        # Independent computation: the fill's contract over all of the instrument's events in one go (the
        # warm-up rule: every retained event before the start counts), then the sector valid at each time.
        _, columns = fill_columns(None, records)
        in_range = [i for i, t in enumerate(columns["event_time"]) if micros(start) <= t < micros(end)]
        expected = {
            columns["event_time"][i]: {
                **{name: columns[name][i] for name in FILL_FIELDS},
                "sector": "Before" if columns["event_time"][i] < micros(change) else "After",
            }
            for i in in_range
        }
        assert [e["sector"] for _, e in sorted(expected.items())] == ["Before", "Before", "After", "After"]

        def from_hbase() -> dict[int, dict[str, Any]]:
            rows = MarketDataStore(settings).history(instrument, since_us=micros(start), until_us=micros(end) - 1)
            return {r["event_time"]: {k: r.get(k) for k in (*FILL_FIELDS, "sector")} for r in rows}

        def from_archive() -> dict[int, dict[str, Any]]:
            rows = spark.table(ARCHIVE).where(f"instrument_id = '{instrument}'").collect()
            found = {}
            for row in rows:
                record = json.loads(row.record_json)
                if "kept" not in record:
                    found[micros(row.event_time.replace(tzinfo=UTC))] = {
                        k: record.get(k) for k in (*FILL_FIELDS, "sector")
                    }
            return found

        assert from_hbase() == expected
        archived = from_archive()
        assert archived == expected
        assert spark.table(ARCHIVE).where(f"instrument_id = '{instrument}' AND record_json LIKE '%kept%'").count() == 1

        # The same backfill again leaves the same rows, in both targets.
        run_backfill(spark, settings, request, options, lines.append)
        assert from_hbase() == expected
        assert from_archive() == archived
        assert spark.table(ARCHIVE).where(f"instrument_id = '{instrument}'").count() == 5

        # A snapshot of the topic taken right after the warm-up events: the read starts at its offsets, and its
        # registers say bid_size 555 where the warm-up event, now not read, says 100. A margin shorter than the
        # warm-up event's lead puts the range's first offsets after it, so the snapshot is taken before the range.
        # HBase only: the archive's rewrite is covered above.
        after_warm_up = {p: max(o for n, o in placed.get(p, [(0, -1)]) if n == 0) + 1 for p in range(3)}
        warm = InstrumentState()
        for name, value in {"bid_price": 10.0, "ask_price": 10.2, "bid_size": 555}.items():
            warm.values[name], warm.as_of[name], warm.offsets[name] = value, micros(events[0][0]), 0
        snapshot_id = f"test-{topics['events']}-warm-up"
        state = CommittedState(0, {topics["events"]: after_warm_up}, {instrument: warm, "XXXX:OTHER": warm})
        write_snapshot(settings, state, topics["events"], snapshot_id)
        try:
            warm_options = BackfillSettings(input_topic=topics["events"], chunk_events=6, late_s=0.25)
            lines.clear()
            hbase_only = BackfillRequest.parse(start, end, [instrument], "hbase")
            report = run_backfill(spark, settings, hbase_only, warm_options, lines.append)
        finally:
            run_statements(settings, [
                f"ALTER TABLE {table} DROP IF EXISTS PARTITION (snapshot_id = '{snapshot_id}')"
                for table in (SNAPSHOT_TABLE, INDEX_TABLE)
            ])  # fmt: skip
        assert any(f"the warm-up starts from state snapshot {snapshot_id}" in line for line in lines), lines
        assert report.records_read == len(records) * 2 - 2 and report.rows_written == 4  # both warm-up events skipped
        _, columns = fill_columns(warm, records[1:])
        from_snapshot = {
            t: {**{name: columns[name][i] for name in FILL_FIELDS}, "sector": expected[t]["sector"]}
            for i, t in enumerate(columns["event_time"])
            if t in expected
        }
        assert [row["bid_size"] for _, row in sorted(from_snapshot.items())] == [555] * 4
        assert from_hbase() == from_snapshot
    finally:
        reset_secmaster(settings)
        refresh_all(spark, settings)  # closes the test instrument: the current view is the universe again
