"""The backfill operator refuses bad parameters and empty ranges before Spark starts, in one sentence."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tickflow-airflow-home-"))

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from tickflow.airflow.operators import backfill as module
from tickflow.airflow.operators.backfill import BackfillOperator
from tickflow.backfill.plan import PartitionRange
from tickflow.backfill.request import RESULT_ENV

GOOD = {"start": "2026-01-05T09:00:00Z", "end": "2026-01-05T10:00:00Z", "instruments": [], "target": "both"}


@pytest.fixture
def no_spark(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """spark-submit replaced by a recorder; spark_conf by a constant (no jar downloads)."""
    calls: list[str] = []
    monkeypatch.setattr("tickflow.spark.spark_conf", lambda *a, **k: {"spark.master": "local[1]"})
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, context: calls.append("spark-submit"))
    return calls


def ranges(in_range: bool) -> Any:
    return lambda *args: [PartitionRange(0, 0, 5 if in_range else 10, 10)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**GOOD, "end": "2026-01-05T08:00:00Z"}, "is not after its start"),
        ({**GOOD, "start": None}, "start 'None' is not a time"),
        ({**GOOD, "target": "kafka"}, "not one of hbase, archive, both"),
    ],
)
def test_bad_params_fail_without_retry_before_spark(no_spark: list[str], params: dict[str, Any], message: str) -> None:
    with pytest.raises(AirflowFailException, match=message):
        BackfillOperator(task_id="backfill_events").execute({"params": params})
    assert no_spark == []


def test_a_range_without_records_fails_without_retry_before_spark(
    no_spark: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tickflow.backfill.plan.partition_ranges", ranges(False))
    with pytest.raises(AirflowFailException, match="has no records between"):
        BackfillOperator(task_id="backfill_events").execute({"params": GOOD})
    assert no_spark == []


def test_a_request_the_spark_app_refuses_fails_without_retry_with_its_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tickflow.backfill.plan.partition_ranges", ranges(True))
    monkeypatch.setattr("tickflow.spark.spark_conf", lambda *a, **k: {"spark.master": "local[1]"})

    def refuse(self: BackfillOperator, context: Any) -> None:
        Path(self.env_vars[RESULT_ENV]).write_text(json.dumps({"status": "invalid", "message": "XNAS:NOPE unknown."}))
        raise AirflowException("Cannot execute: spark-submit")

    monkeypatch.setattr(SparkSubmitOperator, "execute", refuse)
    with pytest.raises(AirflowFailException, match="XNAS:NOPE unknown"):
        BackfillOperator(task_id="backfill_events").execute({"params": GOOD})

    def crash(self: BackfillOperator, context: Any) -> None:
        raise AirflowException("Cannot execute: spark-submit")

    monkeypatch.setattr(SparkSubmitOperator, "execute", crash)
    with pytest.raises(AirflowException, match="failed before it reported why") as failure:
        BackfillOperator(task_id="backfill_events").execute({"params": GOOD})
    assert not isinstance(failure.value, AirflowFailException)  # retried


def test_the_application_is_the_backfill_entry_point() -> None:
    assert Path(module.APPLICATION).name == "backfill.py" and Path(module.APPLICATION).exists()
