"""reference_data_refresh DAG on the real stack: a rejected load runs red and says why.

A good load running green is what tests/e2e/test_airflow_ui.py shows: triggered from the UI, it checks the
same task log, so the suite pays for one good load through Airflow, not two.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.airflow_api import AirflowApi
from tests.support.reference import reset_secmaster
from tickflow.reference.sources import secmaster_connection
from tickflow.settings import Settings

pytestmark = pytest.mark.integration
DAG = "reference_data_refresh"


@pytest.fixture(scope="module")
def airflow(reference_data: Settings) -> Iterator[AirflowApi]:
    api = AirflowApi(reference_data)
    api.wait_for_dag(DAG)
    yield api
    api.set_paused(DAG, True)


def test_a_rejected_load_runs_red_with_the_reason_in_the_log(airflow: AirflowApi, reference_data: Settings) -> None:
    with secmaster_connection(reference_data) as connection:
        connection.execute(
            "DELETE FROM instruments WHERE instrument_id IN "
            "(SELECT instrument_id FROM instruments ORDER BY 1 LIMIT 400)"
        )
    try:
        run_id = airflow.trigger(DAG)
        state = airflow.wait(DAG, run_id)
        log = airflow.task_log(DAG, run_id, "refresh_reference_data")
        assert state == "failed"
        assert "reference load REJECTED: instruments:" in log and "row count" in log
    finally:
        reset_secmaster(reference_data)
