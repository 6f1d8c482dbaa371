"""A person logs in to the Airflow UI, triggers reference_data_refresh and sees the run succeed; its task
log says the load was accepted (the suite's one good load through Airflow). Then a backfill, its params
typed into the trigger form, whose rows appear in the archive and md:history.

The Makefile runs tests/e2e last, after tests/integration has already run this DAG: unpausing it then
creates no catch-up run for the UI's run to queue behind (tests.support.airflow_api.AirflowApi.trigger).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.airflow_api import AirflowApi, last_line
from tests.support.fill import expected_from_input, read_topic
from tests.support.kafka import as_admin
from tests.support.stack import hive_query
from tickflow.hbase.store import MarketDataStore
from tickflow.settings import Settings
from tickflow.stack.airflow import ADMIN_USER, VIEWER_USER, password

pytestmark = pytest.mark.integration
DAG = "reference_data_refresh"
BACKFILL = "backfill"
EVENTS = "md.events"


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def airflow(reference_data: Settings) -> Iterator[AirflowApi]:
    api = AirflowApi(reference_data)
    api.wait_for_dag(DAG)
    yield api
    api.set_paused(DAG, True)


def log_in(page: Any, settings: Settings, user: str = ADMIN_USER) -> None:
    from playwright.sync_api import expect

    page.goto(settings.airflow_url)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password(settings, user))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("input[name=password]")).to_have_count(0, timeout=30_000)
    expect(page.get_by_role("heading", name="Asset Events")).to_be_visible(timeout=30_000)  # the home page


def test_trigger_reference_refresh_from_the_ui_and_see_it_succeed(
    airflow: AirflowApi, stack: Settings, page: object
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    base = stack.airflow_url
    log_in(page, stack)

    page.goto(f"{base}/dags/{DAG}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Trigger Dag - {DAG}")
    checkbox = dialog.get_by_text(f"Unpause {DAG} on trigger")
    if checkbox.count():
        expect(checkbox).to_be_visible()
    dialog.get_by_role("button", name="Trigger").click()
    expect(dialog).to_be_hidden(timeout=60_000)

    # The run the UI created, followed through the API until it finishes, then as the UI lists it.
    run_id = airflow.newest_run(DAG)
    state = airflow.wait(DAG, run_id)
    page.goto(f"{base}/dags/{DAG}/runs")
    first_row = page.locator("tbody tr").first
    expect(first_row).to_contain_text(re.compile(state, re.IGNORECASE), timeout=30_000)
    text = first_row.inner_text().lower()
    page.screenshot(path=str(stack.root / "logs" / "e2e-airflow-runs.png"))
    log = airflow.task_log(DAG, run_id, "refresh_reference_data")
    assert state == "success" and "manual" in text, (state, text, log)
    assert "instruments: load" in log and "reference load ACCEPTED" in log


def test_the_viewer_sees_runs_and_logs_but_a_trigger_is_refused(stack: Settings, page: object) -> None:
    """The read-only login: the runs page and a task log show; the trigger form opens (Airflow's UI offers it
    to everyone) but its submission is refused with 403 and no run is created."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    api = AirflowApi(stack)
    runs_before = api.client.get(f"/dags/{DAG}/dagRuns").json()["total_entries"]
    log_in(page, stack, VIEWER_USER)
    page.goto(f"{stack.airflow_url}/dags/{DAG}/runs")
    expect(page.locator("tbody tr").first).to_be_visible(timeout=30_000)  # the UI test's run, read-only
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Trigger").click()
    expect(dialog).to_contain_text("403 Forbidden", timeout=30_000)
    page.screenshot(path=str(stack.root / "logs" / "e2e-airflow-viewer.png"))
    assert api.client.get(f"/dags/{DAG}/dagRuns").json()["total_entries"] == runs_before


def newest_minute_of_an_instrument(settings: Settings) -> tuple[str, datetime, dict[int, int]]:
    """The reference instrument of the newest record in md.events, the whole minute of its event time, and
    offsets a minute before that (where an independent reading of the minute can start)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer

    known = {str(row[0]) for row in hive_query(settings, "SELECT DISTINCT instrument_id FROM ref.instruments_history")}
    deserialize = AvroDeserializer(SchemaRegistryClient(settings.registry_client_config))
    consumer = Consumer({**as_admin(settings), "group.id": f"e2e-{uuid.uuid4().hex}"})
    try:
        count = len(consumer.list_topics(EVENTS, timeout=10).topics[EVENTS].partitions)
        watermarks = {p: consumer.get_watermark_offsets(TopicPartition(EVENTS, p), timeout=10) for p in range(count)}
        newest: tuple[datetime, str] | None = None
        for message in read_topic(
            settings, EVENTS, start={p: max(low, high - 500) for p, (low, high) in watermarks.items()}
        ):
            key = (message.key() or b"").decode(errors="replace")
            if key in known:
                try:
                    record = deserialize(message.value(), None)
                except Exception:  # noqa: BLE001 - the test suite's deliberately corrupt records
                    continue
                if record["instrument_id"] == key and (newest is None or record["event_time"] > newest[0]):
                    newest = (record["event_time"], key)
        assert newest is not None, f"{EVENTS} holds no event of a reference instrument: the stream tests feed it"
        minute = newest[0].astimezone(UTC).replace(second=0, microsecond=0)
        cutoff = int((minute - timedelta(minutes=1)).timestamp() * 1000)
        found = consumer.offsets_for_times([TopicPartition(EVENTS, p, cutoff) for p in range(count)], timeout=10)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(EVENTS, p), timeout=10)[1] for p in range(count)}
        return newest[1], minute, {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in found}
    finally:
        consumer.close()


def pick_date_time(page: Any, label: str, moment: datetime) -> None:
    """The trigger form's date-time picker of the param labelled ``label``: open it, type the day and the
    time (UTC, as the UI shows times)."""
    from playwright.sync_api import expect

    field = page.get_by_role("dialog").locator("label", has_text=re.compile(f"^{label}"))
    picker = field.locator("xpath=ancestor::*[.//*[@data-testid='datetime-input']][1]").get_by_test_id("datetime-input")
    picker.click()
    opened = page.locator("[data-scope=popover][data-part=content][data-state=open]")
    opened.locator("input[placeholder='YYYY/MM/DD']").fill(f"{moment:%Y/%m/%d}")
    opened.locator("input[placeholder='HH:mm']").fill(f"{moment:%H:%M}")
    page.get_by_role("dialog").get_by_text("Trigger Dag - ").click()  # closes the picker
    expect(picker).to_contain_text(f"{moment:%b %d, %Y %H:%M}")


def test_trigger_a_backfill_from_the_form_and_see_its_rows(stack: Settings, page: object) -> None:
    """Log in, trigger `backfill` for one instrument and one minute with the form's own inputs, see the run
    succeed, and find the backfilled rows in the archive and md:history: one per valid event of that minute."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    api = AirflowApi(stack)
    api.wait_for_dag(BACKFILL)
    instrument, start, offsets = newest_minute_of_an_instrument(stack)
    end = start + timedelta(minutes=1)
    _, valid = expected_from_input(stack, EVENTS, start=offsets)
    expected = {t for i, t in valid if i == instrument and micros(start) <= t < micros(end)}
    assert expected, "the chosen minute holds the newest valid event of the instrument"

    log_in(page, stack)
    page.goto(f"{stack.airflow_url}/dags/{BACKFILL}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Trigger Dag - {BACKFILL}")
    pick_date_time(page, "Start", start)
    pick_date_time(page, "End", end)
    dialog.locator("textarea[name=element_instruments]").fill(instrument)
    page.screenshot(path=str(stack.root / "logs" / "e2e-backfill-form.png"))
    page.get_by_test_id("trigger-dag-submit").click()
    expect(dialog).to_be_hidden(timeout=60_000)

    try:
        run_id = api.newest_run(BACKFILL)
        page.goto("about:blank")  # an open Airflow page polls the API while the backfill runs: CPU it needs
        state = api.wait(BACKFILL, run_id, timeout_s=900)
        log = api.task_log(BACKFILL, run_id, "backfill_events")
        assert state == "success", log
        assert "rows written" in log and "records/s" in log, log
        page.goto(f"{stack.airflow_url}/dags/{BACKFILL}/runs")
        expect(page.locator("tbody tr").first).to_contain_text(re.compile("success", re.IGNORECASE), timeout=30_000)
    finally:
        api.set_paused(BACKFILL, True)

    archived = hive_query(
        stack,
        f"SELECT unix_micros(event_time) FROM md.enriched_archive WHERE instrument_id = '{instrument}' "
        f"AND event_time >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}' AND event_time < TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'",
    )
    assert {int(row[0]) for row in archived} == expected
    assert f"{len(archived):,} rows written" in log, log
    history = MarketDataStore(stack).history(instrument, since_us=micros(start), until_us=micros(end) - 1)
    assert {row["event_time"] for row in history} >= expected


@pytest.mark.parametrize(
    ("instruments", "days_back", "sentence"),
    [
        (["XTST:NOPE"], 0, "Instrument XTST:NOPE is not in the reference data (ref.instruments_history)"),
        ([], 400, "md.events has no records between"),
    ],
    ids=["unknown-instrument", "range-without-data"],
)
def test_a_backfill_with_a_bad_request_fails_in_one_sentence(
    stack: Settings, instruments: list[str], days_back: int, sentence: str
) -> None:
    """The failure modes a user meets in the form, through the same DAG (the API stands in for the form):
    the run fails without retry and its last log line says what was wrong."""
    api = AirflowApi(stack)
    _, start, _ = newest_minute_of_an_instrument(stack)
    start -= timedelta(days=days_back)
    conf = {"start": start.isoformat(), "end": (start + timedelta(minutes=1)).isoformat(), "instruments": instruments}
    try:
        run_id = api.trigger(BACKFILL, {**conf, "target": "archive"})
        assert api.wait(BACKFILL, run_id, timeout_s=600) == "failed"
    finally:
        api.set_paused(BACKFILL, True)
    log = api.task_log(BACKFILL, run_id, "backfill_events")
    assert sentence in last_line(log), log
    task = api.client.get(f"/dags/{BACKFILL}/dagRuns/{run_id}/taskInstances/backfill_events").json()
    assert task["try_number"] == 1, "a bad request is not retried"
