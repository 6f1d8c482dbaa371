"""The deadline loop, on a fake clock."""

from __future__ import annotations

import pytest

from tickflow.errors import TickflowError
from tickflow.retry import WaitTimeout, wait_for, within


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_first_answer_and_sleeps_between_probes() -> None:
    clock, answers = FakeClock(), iter([None, False, "ready"])
    assert wait_for(lambda: next(answers), 10, interval_s=2, clock=clock, sleep=clock.sleep) == "ready"
    assert clock.sleeps == [2, 2]


def test_past_the_deadline_the_callers_sentence_is_raised_with_the_last_transient_error() -> None:
    clock = FakeClock()

    def refused() -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(TickflowError, match="did not answer: refused") as raised:
        wait_for(refused, 3, interval_s=1, retry_if=lambda e: isinstance(e, OSError),
                 timed_out=lambda e: TickflowError(f"did not answer: {e}"), clock=clock, sleep=clock.sleep)  # fmt: skip
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    assert clock.now == 4  # probed at 0, 1, 2, 3 and 4: the last probe is after the deadline


def test_an_error_that_is_not_transient_ends_the_wait_at_once() -> None:
    clock = FakeClock()

    def broken() -> None:
        raise ValueError("bad config")

    with pytest.raises(ValueError, match="bad config"):
        wait_for(broken, 10, retry_if=lambda e: isinstance(e, OSError), clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_without_a_sentence_a_timeout_is_a_wait_timeout() -> None:
    clock = FakeClock()
    with pytest.raises(WaitTimeout):
        wait_for(lambda: None, 1, clock=clock, sleep=clock.sleep)


def test_within_says_whether_the_condition_came_true() -> None:
    assert within(lambda: True, 0)
    assert not within(lambda: False, 0, interval_s=0)
