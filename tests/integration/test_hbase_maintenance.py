"""The hbase_maintenance DAG's work on the real stack: reconciliation of md:latest against a topic of its
own (records framed as the stream frames them), with rows deleted, overwritten or left stale in HBase,
reported to ops.hbase_reconciliation and repaired; and the major compaction it runs first. Then the DAG
itself through Airflow, on the whole of md:latest and md.enriched: a stale cell fails the run with the count
as the last log line, and a run with ``repair=true`` repairs it and runs green.

Instruments carry a prefix of this test's own, and the direct reconciliation is limited to it (md:latest is
shared)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import happybase
import pytest
from confluent_kafka import Producer

from tests.support.airflow_api import AirflowApi, last_line
from tests.support.kafka import as_admin
from tests.support.stack import hive_query
from tickflow.hbase.compaction import compact, compacted
from tickflow.hbase.layout import LATEST
from tickflow.hbase.store import MarketDataStore
from tickflow.reconcile.run import reconcile
from tickflow.settings import Settings

pytestmark = pytest.mark.integration
DAG = "hbase_maintenance"


def event(instrument: str, at: int, price: float) -> dict[str, object]:
    return {"instrument_id": instrument, "event_time": at, "event_count": 1, "enriched": True, "symbol": "T",
            "ingest_time": at, "processed_time": at, "batch_id": 1, "bid_price": price, "bid_price_as_of": at,
            "ask_price": price + 1, "ask_price_as_of": at - 1000}  # fmt: skip


def test_deleted_overwritten_and_stale_cells_are_found_reported_and_repaired(stack: Settings, tmp_topic: str) -> None:
    store = MarketDataStore(stack)
    prefix = f"RECON:{uuid.uuid4().hex[:8]}:"
    ok, lost, overwritten, behind, extra, deleted = (f"{prefix}{name}" for name in "ABCDEF")
    t = (time.time_ns() // 1000 // 1000 - 600_000) * 1000  # ten minutes ago, whole ms
    last = {i: event(i, t, 10.0) for i in (ok, lost, overwritten, behind, deleted)}
    producer = Producer(as_admin(stack))
    for instrument, latest in last.items():
        producer.produce(tmp_topic, store.framed(event(instrument, t - 5_000_000, 9.0)), instrument.encode())
        producer.produce(tmp_topic, store.framed(latest), instrument.encode())
    assert producer.flush(30) == 0

    store.write([last[ok], last[overwritten], last[deleted], event(behind, t - 5_000_000, 9.0)])
    store.write([event(extra, t, 1.0)])
    connection = happybase.Connection(*stack.hbase_thrift_address)
    table = connection.table(LATEST)
    table.put(overwritten.encode(), {b"f:bid_price": b"\x00" * 8}, timestamp=t // 1000)  # same time, other bytes
    table.delete(deleted.encode(), columns=[b"f:bid_price", b"e:symbol"])  # delete markers at "now"
    connection.close()

    found = reconcile(stack, topic=tmp_topic, prefix=prefix, settle_s=0)
    assert {s.value: n for s, n in found.counts.items()} == {"matched": 1, "missing": 2, "stale": 2, "extra": 1}
    assert (found.remaining, found.repaired) == (4, 0)
    assert "4 instruments of md:latest still missing or stale" in (found.failure() or "")
    row = hive_query(stack, "SELECT instruments_checked, missing, stale, extra, remaining, examples, repair "
                            f"FROM ops.hbase_reconciliation WHERE run_id = '{found.run_id}'")  # fmt: skip
    assert row[0][:5] == (6, 2, 2, 1, 4)
    assert row[0][6] is False
    examples = json.loads(row[0][5])
    assert [e["instrument_id"] for e in examples["missing"]] == [lost, deleted]
    assert examples["missing"][0]["row"] == "absent"
    assert {d["column"] for d in examples["missing"][1]["differences"]} == {"f:bid_price", "e:symbol"}
    assert {(e["instrument_id"], e["differences"][0]["problem"]) for e in examples["stale"]} == {
        (overwritten, "differs"), (behind, "older")}  # fmt: skip
    assert examples["extra"] == [extra]

    repaired = reconcile(stack, repair=True, topic=tmp_topic, prefix=prefix, settle_s=0)
    # The deleted cells stay hidden by their delete markers (a re-put at the cell's own, older time) ...
    assert (repaired.repaired, repaired.remaining, repaired.masked) == (3, 1, 1)
    assert "hidden by delete markers" in (repaired.failure() or "")
    state = store.latest([lost, overwritten, behind])
    assert all(state[i].values["bid_price"] == 10.0 for i in (lost, overwritten, behind))

    # ... until a flush and major compaction drop them: then the repair restores them.
    result = compact(stack, tables=[LATEST], timeout_s=300)
    assert compacted(result.after)
    again = reconcile(stack, repair=True, topic=tmp_topic, prefix=prefix, settle_s=0)
    assert (again.repaired, again.remaining, again.failure()) == (1, 0, None)
    assert store.latest([deleted])[deleted].values["symbol"] == "T"

    settled = reconcile(stack, repair=True, topic=tmp_topic, prefix=prefix, settle_s=0, write_report=False)
    assert {s.value: n for s, n in settled.counts.items()} == {"matched": 5, "missing": 0, "stale": 0, "extra": 1}
    assert settled.repaired == 0, "nothing left to re-put: the repair is idempotent"


@pytest.fixture(scope="module")
def airflow(stack: Settings) -> Iterator[AirflowApi]:
    api = AirflowApi(stack)
    api.wait_for_dag(DAG)
    yield api
    api.set_paused(DAG, True)


def test_the_dag_fails_on_a_stale_cell_with_the_count_and_a_repair_run_is_green(
    airflow: AirflowApi, stack: Settings
) -> None:
    store = MarketDataStore(stack)
    instrument = f"ZTST:MAINT{uuid.uuid4().hex[:6].upper()}"
    t = (time.time_ns() // 1000 // 1000 - 60_000) * 1000
    latest = event(instrument, t, 10.0)
    producer = Producer(as_admin(stack))
    producer.produce("md.enriched", store.framed(latest), instrument.encode())  # as the stream publishes it
    assert producer.flush(30) == 0
    published = time.monotonic()
    store.write([latest])  # as the sink writes it, then a cell overwritten with other bytes at its own time
    connection = happybase.Connection(*stack.hbase_thrift_address)
    connection.table(LATEST).put(instrument.encode(), {b"f:bid_price": b"\x00" * 8}, timestamp=t // 1000)
    connection.close()
    time.sleep(max(0.0, 31 - (time.monotonic() - published)))  # records of the last 30 s are not expected yet

    run_id = airflow.trigger(DAG, {"repair": False})
    assert airflow.wait(DAG, run_id, timeout_s=1800) == "failed"
    compacted_log = airflow.task_log(DAG, run_id, "compact_md_tables")
    assert airflow.task_state(DAG, run_id, "compact_md_tables") == "success", compacted_log
    assert "store files" in compacted_log, compacted_log
    log = airflow.task_log(DAG, run_id, "reconcile_md_latest")
    last = last_line(log)
    found = re.search(r"(\d+) instruments of md:latest still missing or stale: examples in \S+ run ([^;.\s]+)", last)
    assert found, log
    remaining, report_run = int(found.group(1)), found.group(2)
    row = hive_query(
        stack, f"SELECT stale, remaining, examples FROM ops.hbase_reconciliation WHERE run_id = '{report_run}'"
    )
    stale, reported, examples = row[0]
    assert reported == remaining >= 1
    assert stale > 5 or instrument in {e["instrument_id"] for e in json.loads(str(examples))["stale"]}

    run_id = airflow.trigger(DAG, {"repair": True, "compact": False})  # the stale cell needs no compaction
    state = airflow.wait(DAG, run_id, timeout_s=1800)
    log = airflow.task_log(DAG, run_id, "reconcile_md_latest")
    assert state == "success", log
    assert airflow.task_state(DAG, run_id, "compact_md_tables") == "skipped"
    assert "repair: re-put the last record of" in log and "0 mismatches remain" in log, log
    assert store.latest([instrument])[instrument].values["bid_price"] == 10.0
