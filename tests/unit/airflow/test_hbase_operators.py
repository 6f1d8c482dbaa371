"""The HBase maintenance operators: the templated ``repair`` flag, and failures that end the run without a
retry, with one sentence (the count of what remains) as the last log line."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from typing import Any

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tickflow-airflow-home-"))

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from tickflow.airflow.operators.hbase import HBaseCompactionOperator, HBaseReconciliationOperator
from tickflow.hbase.compaction import CompactionTimeout
from tickflow.reconcile.compare import Report, Status


def report(remaining: int) -> Report:
    counts = {Status.MATCHED: 3, Status.STALE: remaining}
    return Report("run-1", datetime(2026, 1, 5), "snap-1", "md.enriched", counts, repaired=0, remaining=remaining)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """reconcile() replaced by a recorder; snapshot "bad" leaves two instruments stale."""
    seen: list[dict[str, Any]] = []

    def reconcile(settings: Any, **kwargs: Any) -> Report:
        seen.append(kwargs)
        return report(remaining=2 if kwargs["snapshot_id"] == "bad" else 0)

    monkeypatch.setattr("tickflow.reconcile.run.reconcile", reconcile)
    return seen


@pytest.mark.parametrize(("rendered", "repair"), [("True", True), ("false", False), (True, True), ("", False)])
def test_the_rendered_repair_param_is_read_as_a_boolean(
    calls: list[dict[str, Any]], rendered: Any, repair: bool
) -> None:
    result = HBaseReconciliationOperator(task_id="r", repair=rendered, snapshot_id="").execute({})
    assert calls == [{"repair": repair, "snapshot_id": None}]
    assert result == {"run_id": "run-1", "checked": 3, "repaired": 0}


def test_mismatches_left_fail_the_task_without_retry_saying_how_many(calls: list[dict[str, Any]]) -> None:
    with pytest.raises(AirflowFailException, match=r"^2 instruments of md:latest still missing or stale"):
        HBaseReconciliationOperator(task_id="r", snapshot_id="bad").execute({})


def test_a_compaction_that_does_not_finish_fails_without_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    def compact(settings: Any, timeout_s: float) -> None:
        raise CompactionTimeout(f"md:history still holds 4 store files after {timeout_s:.0f}s.")

    monkeypatch.setattr("tickflow.hbase.compaction.compact", compact)
    with pytest.raises(AirflowFailException, match="after 5s"):
        HBaseCompactionOperator(task_id="c", timeout_s=5).execute({})


def test_a_compact_param_rendered_false_skips_the_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tickflow.hbase.compaction.compact", lambda *a, **k: pytest.fail("compacted"))
    with pytest.raises(AirflowSkipException, match="param compact is false"):
        HBaseCompactionOperator(task_id="c", compact="False").execute({})
