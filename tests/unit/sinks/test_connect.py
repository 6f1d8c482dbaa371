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


def test_every_connectors_status_comes_from_one_expanded_listing() -> None:
    from tickflow.sinks.connect import parse_statuses

    body = {
        "trades-postgres-source": {
            "status": {
                "name": "trades-postgres-source",
                "connector": {"state": "RUNNING", "worker_id": "w"},
                "tasks": [{"id": 0, "state": "FAILED", "worker_id": "w", "trace": TRACE}],
                "type": "source",
            }
        },
        "md-enriched-hbase-sink": {
            "status": {
                "name": "md-enriched-hbase-sink",
                "connector": {"state": "RUNNING", "worker_id": "w"},
                "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "w"}],
                "type": "sink",
            }
        },
    }
    found = parse_statuses(body)
    assert [(s.name, s.type, s.running) for s in found] == [
        ("md-enriched-hbase-sink", "sink", True),
        ("trades-postgres-source", "source", False),
    ]


def test_rows_show_the_connector_then_its_tasks_with_a_failures_first_trace_line() -> None:
    failed = ConnectorStatus.from_json(
        {"name": "x", "connector": {"state": "FAILED", "worker_id": "w", "trace": "boom: no plugin\n\tat A"},
         "tasks": [{"id": 1, "state": "RUNNING", "worker_id": "w"}, {"id": 0, "state": "FAILED", "worker_id": "w",
                   "trace": TRACE}]}
    )  # fmt: skip
    assert failed.rows() == [
        ("connector", "FAILED", "w", "boom: no plugin"),
        ("task 0", "FAILED", "w", TRACE.splitlines()[0]),
        ("task 1", "RUNNING", "w", ""),
    ]
    assert status("RUNNING", (0, "RUNNING", None)).rows()[0] == ("connector", "RUNNING", "127.0.0.1:8083", "")
