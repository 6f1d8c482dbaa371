"""Connect's status answers, read into what `tickflow connect status` and deploy show."""

from __future__ import annotations

from tickflow.sinks.connect import ConnectorStatus

TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: Could not open the HBase tables\n\tat io.tickflow.X(X.java:1)\n"
)


def status(connector: str = "RUNNING", *tasks: tuple[int, str, str | None]) -> ConnectorStatus:
    return ConnectorStatus.from_json(
        {
            "name": "sink",
            "connector": {"state": connector, "worker_id": "127.0.0.1:8083"},
            "tasks": [{"id": i, "state": s, "worker_id": "127.0.0.1:8083", **({"trace": t} if t else {})}
                      for i, s, t in tasks],
            "type": "sink",
        }
    )  # fmt: skip


def test_running_needs_the_connector_and_every_task_running() -> None:
    assert status("RUNNING", (0, "RUNNING", None), (1, "RUNNING", None)).running
    assert not status("RUNNING", (0, "RUNNING", None), (1, "UNASSIGNED", None)).running
    assert not status("RUNNING").running, "no task yet is not running"


def test_a_failed_task_is_told_by_the_first_line_of_its_trace() -> None:
    found = status("RUNNING", (1, "FAILED", TRACE), (0, "RUNNING", None))
    assert [t.id for t in found.tasks] == [0, 1]
    assert found.tasks[1].reason == "org.apache.kafka.connect.errors.ConnectException: Could not open the HBase tables"
    assert found.failures == [f"task 1: {found.tasks[1].reason}"]
    assert found.tasks[0].reason is None
