"""A small client of Airflow's REST API (v2) for the tests: trigger, wait, read task logs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx

from tickflow.settings import Settings
from tickflow.stack.airflow import ADMIN_USER, password

FINISHED = {"success", "failed"}


class AirflowApi:
    def __init__(self, settings: Settings, user: str = ADMIN_USER) -> None:
        self.base = settings.airflow_url
        token = httpx.post(
            f"{self.base}/auth/token", json={"username": user, "password": password(settings, user)}, timeout=30
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
        """A manual run; a paused DAG is unpaused once the run exists.

        Unpausing a scheduled DAG (``catchup=False``) makes the scheduler run its latest due interval
        first, and with ``max_active_runs=1`` a manual run waits behind that whole run. A run created on
        that interval takes its place: the scheduler sees the interval has a run and moves on.
        """
        dag = self.client.get(f"/dags/{dag_id}").json()
        due = dag.get("next_dagrun_run_after")
        claim = dag["is_paused"] and due is not None and datetime.fromisoformat(due) <= datetime.now(UTC)
        body = {"logical_date": dag["next_dagrun_logical_date"] if claim else None, "conf": conf or {}}
        response = self.client.post(f"/dags/{dag_id}/dagRuns", json=body)
        if claim and response.status_code == 409:  # an earlier session's run holds that interval already
            response = self.client.post(f"/dags/{dag_id}/dagRuns", json={**body, "logical_date": None})
        response.raise_for_status()
        if dag["is_paused"]:
            self.set_paused(dag_id, False)
        run_id: str = response.json()["dag_run_id"]
        return run_id

    def newest_run(self, dag_id: str) -> str:
        response = self.client.get(f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 1})
        response.raise_for_status()
        run_id: str = response.json()["dag_runs"][0]["dag_run_id"]
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


AIRFLOW_EPILOGUE = ("Task failed with exception", "::group::Post Execute", "::endgroup::", "Pushing xcom")


def last_line(log: str) -> str:
    """The last line the task itself wrote: what a user reads above Airflow's own closing lines."""
    lines = [line for line in log.strip().splitlines() if line.strip()]
    while lines and lines[-1].startswith(AIRFLOW_EPILOGUE):
        lines.pop()
    return lines[-1] if lines else ""
