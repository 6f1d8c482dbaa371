"""A small client of Airflow's REST API (v2) for the tests: trigger, wait, read task logs."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tickflow.settings import Settings
from tickflow.stack.airflow import ADMIN_USER, admin_password

FINISHED = {"success", "failed"}


class AirflowApi:
    def __init__(self, settings: Settings) -> None:
        self.base = settings.airflow_url
        token = httpx.post(
            f"{self.base}/auth/token", json={"username": ADMIN_USER, "password": admin_password(settings)}, timeout=30
        )
        token.raise_for_status()
        self.client = httpx.Client(
            base_url=f"{self.base}/api/v2",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120) -> None:
        """Until the dag-processor has parsed the DAG."""
        deadline = time.monotonic() + timeout_s
        while self.client.get(f"/dags/{dag_id}").status_code != 200:
            assert time.monotonic() < deadline, f"{dag_id} was not parsed within {timeout_s}s"
            time.sleep(2)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.client.patch(f"/dags/{dag_id}", json={"is_paused": paused}).raise_for_status()

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        response = self.client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        response.raise_for_status()
        run_id: str = response.json()["dag_run_id"]
        return run_id

    def state(self, dag_id: str, run_id: str) -> str:
        response = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        state: str = response.json()["state"]
        return state

    def wait(self, dag_id: str, run_id: str, timeout_s: float = 600) -> str:
        deadline = time.monotonic() + timeout_s
        while (state := self.state(dag_id, run_id)) not in FINISHED:
            assert time.monotonic() < deadline, f"{dag_id} run {run_id} still {state} after {timeout_s}s"
            time.sleep(1)  # one local REST call: waiting less finishes sooner
        return state

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        response = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        response.raise_for_status()
        state: str | None = response.json()["state"]
        return state

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every attempt's log lines of one task, as text."""
        tries = self.client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}").json()["try_number"]
        lines = []
        for attempt in range(1, tries + 1):
            response = self.client.get(
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{attempt}",
                params={"full_content": True},
                headers={"Accept": "application/json"},
            )
            response.raise_for_status()
            lines += [str(event.get("event", "")) for event in response.json()["content"]]
        return "\n".join(lines)


def reset_secmaster(settings: Settings) -> None:
    from tickflow.reference.sources import secmaster_connection, seed_secmaster

    with secmaster_connection(settings) as connection:
        connection.execute("DROP TABLE IF EXISTS instruments")
    seed_secmaster(settings)


def prepare_reference_sources(settings: Settings) -> None:
    """Migrated warehouse, a known universe in the source systems and one good load to compare with
    (a deliberate re-baseline: earlier tests may have left a different universe)."""
    from tests.support.stack import tickflow
    from tickflow.sources.landing import write_reference
    from tickflow.sources.universe import build_universe, fx_rates

    assert tickflow("hive", "migrate", check=False).returncode == 0
    write_reference(settings, build_universe(500, 7), fx_rates(7))  # the demo's universe
    reset_secmaster(settings)
    baseline = tickflow("reference", "refresh", "--max-drop", "1", check=False)
    assert baseline.returncode == 0, baseline.stderr
