"""The enrichment stream's health verdicts, from the facts (no Spark, no Kafka)."""

from __future__ import annotations

import pytest

from tickflow.appctl import AppRecord
from tickflow.monitoring.promql import Alert
from tickflow.stream.control import HealthLimits, MonitoredFigures, Verdict, assess, lag_of, monitored_figures
from tickflow.stream.progress import StreamProgress
from tickflow.stream.settings import StreamSettings

NOW = 10_000.0
LIMITS = HealthLimits(boot_s=90, start_grace_s=300, stall_after_s=120)


def record(started_ago: float) -> AppRecord:
    return AppRecord(pid=42, start_ticks=1, started_at=NOW - started_ago, command=["x"], log="l")


def progress(age: float) -> StreamProgress:
    return StreamProgress(written_at=NOW - age, batch_id=7, input_rows_per_second=5000.0,
                          processed_rows_per_second=5200.0, dlq_total=3, state_rows=500)  # fmt: skip


def test_not_running_is_dead_unless_stopped_on_request() -> None:
    assert assess(None, None, None, None, NOW).verdict is Verdict.DEAD
    assert assess(None, NOW - 5, None, None, NOW).verdict is Verdict.STOPPED


def test_no_batch_yet_is_starting_within_the_grace_period_and_stalled_after() -> None:
    assert assess(record(60), None, None, 10, NOW, LIMITS).verdict is Verdict.STARTING
    assert assess(record(400), None, None, 10, NOW, LIMITS).verdict is Verdict.STALLED
    assert assess(record(400), None, None, None, NOW, LIMITS).verdict is Verdict.STALLED


def test_no_batch_since_start_with_nothing_to_read_is_healthy_once_booted() -> None:
    assert assess(record(30), None, None, 0, NOW, LIMITS).verdict is Verdict.STARTING
    idle = assess(record(100), None, None, 0, NOW, LIMITS)
    assert idle.verdict is Verdict.HEALTHY and "idle since start" in idle.reason


def test_progress_from_before_this_start_does_not_count() -> None:
    stale = progress(age=1000)
    assert assess(record(30), None, stale, 5, NOW, LIMITS).verdict is Verdict.STARTING


@pytest.mark.parametrize(
    ("age", "lag", "verdict"),
    [
        (5, 0, Verdict.HEALTHY),
        (5, 10_000, Verdict.HEALTHY),  # behind, but batches are coming
        (500, 0, Verdict.HEALTHY),  # idle: nothing to read
        (500, 12, Verdict.STALLED),  # input waits and no batch for long
        (500, None, Verdict.STALLED),  # lag unknown: assume the worst
    ],
)
def test_old_batches_are_a_stall_only_when_input_waits(age: float, lag: int | None, verdict: Verdict) -> None:
    assert assess(record(3600), None, progress(age), lag, NOW, LIMITS).verdict is verdict


def test_the_health_line_says_everything_in_one_line() -> None:
    line = assess(record(3600), None, progress(3), 250, NOW, LIMITS).line()
    assert "\n" not in line
    expected = ("HEALTHY", "pid 42", "batch 7 3s ago", "in 5,000/s, processed 5,200/s", "lag 250", "DLQ 3", "state 500")
    for part in expected:
        assert part in line


def test_lag_counts_partitions_the_last_batch_never_saw() -> None:
    marks = {("md.events", 0): 100, ("md.events", 1): 50, ("md.events", 2): 7}
    assert lag_of({"md.events": {"0": 90, "1": 50}}, marks) == 10 + 0 + 7
    assert lag_of(None, marks) == 157


@pytest.mark.parametrize(
    ("age", "lag", "firing", "verdict", "said"),
    [
        (500, 12, True, Verdict.STALLED, "TickflowStreamNoBatch fires: no micro-batch for 500s with 12 records"),
        (500, 12, False, Verdict.HEALTHY, "but TickflowStreamNoBatch does not fire"),  # not evaluated yet
        (500, 0, False, Verdict.HEALTHY, "idle, nothing to read"),
        (5, 0, False, Verdict.HEALTHY, "micro-batches flowing"),
    ],
)
def test_with_prometheus_its_no_batch_alert_decides_the_stall(
    age: float, lag: int, firing: bool, verdict: Verdict, said: str
) -> None:
    health = assess(record(3600), None, progress(age), lag, NOW, LIMITS, no_batch_alert=firing)
    assert health.verdict is verdict and said in health.reason


def test_what_only_this_machine_knows_comes_from_the_app_record_even_when_the_alert_fires() -> None:
    assert assess(None, None, progress(500), 12, NOW, LIMITS, no_batch_alert=True).verdict is Verdict.DEAD
    assert assess(None, NOW - 5, progress(500), 12, NOW, LIMITS, no_batch_alert=True).verdict is Verdict.STOPPED
    # Restarted a minute ago: the alert still sees the batch of the copy before, this copy is starting.
    assert assess(record(60), None, progress(500), 12, NOW, LIMITS, no_batch_alert=True).verdict is Verdict.STARTING


def test_the_stall_limit_is_the_settings_one_which_the_alert_threshold_is_exported_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TICKFLOW_STREAM_STALL_AFTER_S", raising=False)
    assert HealthLimits().stall_after_s == StreamSettings().stall_after_s == 120
    monkeypatch.setenv("TICKFLOW_STREAM_STALL_AFTER_S", "20")
    assert HealthLimits.of(StreamSettings()).stall_after_s == 20


class Monitored:
    """Prometheus with a lag and some alerts firing."""

    def __init__(self, lag: float | None, firing: list[str]) -> None:
        self.lag, self.names = lag, firing
        self.asked: list[str] = []

    def value(self, promql: str) -> float | None:
        self.asked.append(promql)
        return self.lag

    def firing(self) -> list[Alert]:
        return [Alert(name) for name in self.names]


def test_prometheus_figures_are_the_lag_rule_and_the_no_batch_alert() -> None:
    prometheus = Monitored(1200.0, ["TickflowServiceDown", "TickflowStreamNoBatch"])
    assert monitored_figures(prometheus) == MonitoredFigures(lag=1200, no_batch_firing=True)
    assert prometheus.asked == ["tickflow:stream_lag_records"]
    assert monitored_figures(Monitored(0.0, ["TickflowServiceDown"])) == MonitoredFigures(0, False)


def test_without_a_lag_prometheus_has_no_figures_since_its_alert_cannot_fire() -> None:
    assert monitored_figures(Monitored(None, [])) is None
    assert monitored_figures(Monitored(float("nan"), [])) is None
