"""Waiting with a deadline: the one loop every "until it answers, or give up with a sentence" goes through."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tickflow.errors import TickflowError

T = TypeVar("T")


class WaitTimeout(TickflowError):
    """What ``wait_for`` raises past its deadline when the caller gave no error of its own."""


def _never(error: Exception) -> bool:
    return False


def wait_for(
    probe: Callable[[], T | None],
    timeout_s: float,
    *,
    interval_s: float = 0.5,
    retry_if: Callable[[Exception], bool] = _never,
    timed_out: Callable[[Exception | None], Exception] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``probe`` every ``interval_s`` until it returns something other than None or False, and return that.

    An exception the probe raises ends the wait unless ``retry_if`` says it is transient (a refused
    connection while a server starts); past ``timeout_s`` the wait raises ``timed_out(last transient
    error or None)``, a sentence saying what did not happen and what to do, or a plain ``WaitTimeout``.
    """
    deadline = clock() + timeout_s
    while True:
        error: Exception | None = None
        try:
            result = probe()
        except Exception as caught:
            if not retry_if(caught):
                raise
            error = caught
        else:
            if result is not None and result is not False:
                return result
        if clock() > deadline:
            raise (timed_out(error) if timed_out else WaitTimeout(f"Gave up waiting after {timeout_s:g}s.")) from error
        sleep(interval_s)


def within(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
    """Whether ``condition`` became true within ``timeout_s`` (for waits whose caller decides what a timeout means)."""
    try:
        return wait_for(lambda: condition() or None, timeout_s, interval_s=interval_s)
    except WaitTimeout:
        return False
