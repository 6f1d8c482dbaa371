"""The watchdog's connector check: a failed connector or task fails the task, naming it and its error."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tickflow-airflow-home-"))

from airflow.sdk.exceptions import AirflowException

from tickflow.airflow.operators.connect import ConnectorsHealthOperator
from tickflow.sinks.connect import ConnectClient, ConnectorStatus, TaskState, failures

TRACE = "org.apache.kafka.connect.errors.DataException: trade T-1 has no instrument_id\n\tat ..."


def status(name: str, state: str = "RUNNING", *tasks: str) -> ConnectorStatus:
    return ConnectorStatus(
        name, state, "w1", tuple(TaskState(i, s, "w1", TRACE if s == "FAILED" else None) for i, s in enumerate(tasks))
    )


def test_failures_name_the_connector_or_task_and_the_first_line_of_its_trace() -> None:
    assert failures([status("hbase-sink", "RUNNING", "RUNNING", "RUNNING")]) == []
    assert failures([status("trades-source", "RUNNING", "FAILED")]) == [
        "trades-source task 0: org.apache.kafka.connect.errors.DataException: trade T-1 has no instrument_id"
    ]


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> Any:
    def answer(statuses: list[ConnectorStatus]) -> None:
        monkeypatch.setattr(ConnectClient, "statuses", lambda self: statuses)

    return answer


def test_running_connectors_pass_and_a_failed_task_fails_the_check(answering: Any) -> None:
    answering([status("hbase-sink", "RUNNING", "RUNNING")])
    assert ConnectorsHealthOperator(task_id="c").execute({}) == ["hbase-sink"]
    answering([status("hbase-sink", "RUNNING", "RUNNING"), status("trades-source", "RUNNING", "FAILED")])
    with pytest.raises(AirflowException, match=r"^1 part of Kafka Connect failed: trades-source task 0: "):
        ConnectorsHealthOperator(task_id="c").execute({})
