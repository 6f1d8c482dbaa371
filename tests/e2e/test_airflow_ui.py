"""A person logs in to the Airflow UI, triggers reference_data_refresh and sees the run succeed; its task
log says the load was accepted (the suite's one good load through Airflow).

The Makefile runs tests/e2e last, after tests/integration has already run this DAG: unpausing it then
creates no catch-up run for the UI's run to queue behind (tests.support.airflow_api.AirflowApi.trigger).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.airflow_api import AirflowApi
from tickflow.settings import Settings
from tickflow.stack.airflow import ADMIN_USER, admin_password

pytestmark = pytest.mark.integration
DAG = "reference_data_refresh"


@pytest.fixture(scope="module")
def airflow(reference_data: Settings) -> Iterator[AirflowApi]:
    api = AirflowApi(reference_data)
    api.wait_for_dag(DAG)
    yield api
    api.set_paused(DAG, True)


def test_trigger_reference_refresh_from_the_ui_and_see_it_succeed(
    airflow: AirflowApi, stack: Settings, page: object
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    base = stack.airflow_url
    page.goto(base)
    page.fill("input[name=username]", ADMIN_USER)
    page.fill("input[name=password]", admin_password(stack))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("input[name=password]")).to_have_count(0, timeout=30_000)
    expect(page.get_by_role("heading", name="Asset Events")).to_be_visible(timeout=30_000)  # the home page

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
