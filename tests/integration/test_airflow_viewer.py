"""The read-only Airflow login: it sees DAGs, runs and task logs, and may not trigger, pause or clear."""

from __future__ import annotations

import pytest

from tests.support.airflow_api import AirflowApi
from tickflow.settings import Settings
from tickflow.stack.airflow import VIEWER_USER

pytestmark = pytest.mark.integration
DAG = "state_snapshot"


def test_the_viewer_reads_dags_and_runs_but_may_not_trigger_or_pause(stack: Settings) -> None:
    admin = AirflowApi(stack)
    admin.wait_for_dag(DAG)
    paused = admin.client.get(f"/dags/{DAG}").json()["is_paused"]
    viewer = AirflowApi(stack, user=VIEWER_USER)
    assert viewer.client.get(f"/dags/{DAG}").json()["dag_id"] == DAG
    assert viewer.client.get(f"/dags/{DAG}/dagRuns").status_code == 200
    assert viewer.client.post(f"/dags/{DAG}/dagRuns", json={"logical_date": None}).status_code == 403
    assert viewer.client.patch(f"/dags/{DAG}", json={"is_paused": not paused}).status_code == 403
    assert admin.client.get(f"/dags/{DAG}").json()["is_paused"] == paused, "the refused (un)pause changed nothing"
