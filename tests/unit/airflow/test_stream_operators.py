"""The enrichment-stream operator and sensor decide from the stream's health (no Airflow services, no Spark)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tickflow-airflow-home-"))

from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from tickflow.airflow.hooks.stream import EnrichmentStreamHook
from tickflow.airflow.operators.stream import EnrichmentStreamOperator
from tickflow.airflow.sensors.stream import EnrichmentStreamHealthSensor
from tickflow.appctl import AppRecord, StartResult
from tickflow.stream.control import StreamHealth, Verdict

RECORD = AppRecord(7, 1, 0.0, ["spark-submit"], "log")


@dataclass
class FakeStream:
    calls: list[tuple[str, Any]] = field(default_factory=list)
    log_path: str = "enrichment-stream.log"

    def start(self, restart: bool = False, grace_s: float = 60.0) -> StartResult:
        self.calls.append(("start", restart))
        return StartResult(True, RECORD, "started as pid 7")

    def stop(self, grace_s: float = 60.0) -> AppRecord:
        self.calls.append(("stop", grace_s))
        return RECORD


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> FakeStream:
    fake = FakeStream()
    monkeypatch.setattr(EnrichmentStreamHook, "get_conn", lambda self: fake)
    return fake


def with_health(monkeypatch: pytest.MonkeyPatch, verdict: Verdict) -> None:
    monkeypatch.setattr(EnrichmentStreamHook, "health", lambda self, stream=None: StreamHealth(verdict, "test"))


def run(action: str, run_type: str = "manual") -> dict[str, Any]:
    operator = EnrichmentStreamOperator(task_id="manage_stream", action=action)
    result: dict[str, Any] = operator.execute({"dag_run": SimpleNamespace(run_type=run_type)})
    return result


@pytest.mark.parametrize(
    ("action", "verdict", "expected"),
    [
        ("ensure", Verdict.DEAD, [("start", False)]),
        ("ensure", Verdict.HEALTHY, [("start", False)]),  # start() finds the running copy under the lock
        ("ensure", Verdict.STALLED, [("start", True)]),
        ("restart", Verdict.HEALTHY, [("start", True)]),
        ("ensure", Verdict.STOPPED, [("start", False)]),  # a person asked for it: start again
    ],
)
def test_actions(
    stream: FakeStream, monkeypatch: pytest.MonkeyPatch, action: str, verdict: Verdict, expected: list[Any]
) -> None:
    with_health(monkeypatch, verdict)
    run(action)
    assert stream.calls == expected


def test_the_watchdog_leaves_a_stream_stopped_on_request_alone(
    stream: FakeStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_health(monkeypatch, Verdict.STOPPED)
    assert run("ensure", run_type="scheduled")["started"] is False
    assert stream.calls == []


def test_stop_does_not_look_at_health(stream: FakeStream) -> None:
    assert run("stop")["pid"] == 7 and stream.calls == [("stop", None)]  # None: the settings' grace


def test_an_unknown_action_is_refused(stream: FakeStream) -> None:
    with pytest.raises(AirflowException, match="choose one of ensure, restart, stop"):
        run("pause")


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [(Verdict.HEALTHY, True), (Verdict.STARTING, False), (Verdict.DEAD, AirflowException),
     (Verdict.STALLED, AirflowException), (Verdict.STOPPED, AirflowSkipException)],
)  # fmt: skip
def test_health_sensor(monkeypatch: pytest.MonkeyPatch, verdict: Verdict, outcome: Any) -> None:
    with_health(monkeypatch, verdict)
    sensor = EnrichmentStreamHealthSensor(task_id="check_stream_health")
    if isinstance(outcome, bool):
        assert sensor.poke({}) is outcome
    else:
        with pytest.raises(outcome, match=f"enrichment stream {verdict.value.upper()}"):
            sensor.poke({})


def test_an_unknown_expectation_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in the templated ``expect`` ("stoped") must fail the task, not wait for a healthy stream."""
    with_health(monkeypatch, Verdict.STOPPED)
    sensor = EnrichmentStreamHealthSensor(task_id="check_stream_health", expect="stoped")
    with pytest.raises(AirflowException, match="choose healthy or stopped"):
        sensor.poke({})
