"""Every DAG in dags/ imports cleanly, does no work while being parsed, and carries its metadata."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {"backfill", "enrichment_stream", "hbase_maintenance", "reference_data_refresh", "state_snapshot"}


class WorkAtParseTime(AssertionError):
    pass


def _forbidden(what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> None:
        raise WorkAtParseTime(f"a DAG file did {what} while being parsed")

    return refuse


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook, Variable

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Variable, "get", _forbidden("Variable.get"))
        patch.setattr(BaseHook, "get_connection", _forbidden("a connection lookup"))
        patch.setattr(subprocess.Popen, "__init__", _forbidden("a subprocess"))
        patch.setattr(socket.socket, "connect", _forbidden("a network connection"))
        return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_file_imports_without_errors_or_work(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


def test_one_dag_per_file_named_after_it(dagbag: Any) -> None:
    for dag_id in dagbag.dag_ids:
        assert Path(dagbag.dags[dag_id].fileloc).stem == dag_id


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_metadata(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.tags, "tags say what part of the platform a DAG belongs to"
    assert dag.doc_md and len(dag.doc_md) > 200, "doc_md tells the person in the UI what the DAG does"
    assert not dag.catchup, "no backfill storms when a DAG is unpaused"
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.owner not in ("", "airflow"), f"{task.task_id} has no owner"
        assert task.retries >= 1, f"{task.task_id} has no retries"


def test_enrichment_stream_offers_the_three_actions(dagbag: Any) -> None:
    dag = dagbag.dags["enrichment_stream"]
    param = dag.params.get_param("action")
    assert param.value == "ensure"
    assert param.schema["enum"] == ["ensure", "restart", "stop"]
    assert [t.task_id for t in dag.tasks] == ["manage_stream", "check_stream_health", "check_connectors"]


def test_state_snapshot_exports_on_schedule_and_restores_on_request(dagbag: Any) -> None:
    dag = dagbag.dags["state_snapshot"]
    assert dag.params.get_param("action").value == "snapshot"
    assert dag.params.get_param("action").schema["enum"] == ["snapshot", "restore"]
    downstream = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert downstream == {
        "choose_action": ["export_snapshot", "restore_snapshot"],
        "export_snapshot": [],
        "restore_snapshot": ["check_stream_health"],
        "check_stream_health": [],
    }


def test_hbase_maintenance_compacts_then_reconciles_with_repair_off_by_default(dagbag: Any) -> None:
    dag = dagbag.dags["hbase_maintenance"]
    assert dag.params.get_param("repair").value is False
    assert [t.task_id for t in dag.topological_sort()] == ["compact_md_tables", "reconcile_md_latest"]
    assert dag.get_task("reconcile_md_latest").trigger_rule == "all_done"


def test_backfill_is_manual_and_its_form_explains_every_param(dagbag: Any) -> None:
    dag = dagbag.dags["backfill"]
    assert type(dag.timetable).__name__ == "NullTimetable", "manual only: schedule=None"
    for name in ("start", "end", "instruments", "target"):
        assert dag.params.get_param(name).description, f"{name} needs a description for the trigger form"
    assert dag.params.get_param("target").schema["enum"] == ["hbase", "archive", "both", "check"]
    assert [t.task_id for t in dag.tasks] == ["backfill_events"]
