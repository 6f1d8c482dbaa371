"""At most one copy of a managed app: the lock, the record, the marker, stop by session, the foreground claim."""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path

import pytest

from tickflow.appctl import AppControl, AppRecord
from tickflow.errors import TickflowError
from tickflow.processes import start_ticks as proc_start_ticks

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"]


@pytest.fixture
def control(tmp_path: Path) -> AppControl:
    return AppControl("sleeper", tmp_path, lock_timeout_s=5)


def _start(state_dir: str) -> int:
    control = AppControl("sleeper", Path(state_dir), lock_timeout_s=30)
    result = control.ensure_started(SLEEPER, {"PATH": "/usr/bin:/bin"}, Path(state_dir) / "sleeper.log")
    return result.record.pid if result.started else -result.record.pid


def test_a_second_start_finds_the_running_copy(control: AppControl, tmp_path: Path) -> None:
    first = control.ensure_started(SLEEPER, {}, tmp_path / "log")
    try:
        second = control.ensure_started(SLEEPER, {}, tmp_path / "log")
        assert first.started and not second.started
        assert second.record.pid == first.record.pid and "already running" in second.reason
    finally:
        assert control.stop(grace_s=5) is not None
    assert control.running() is None and proc_start_ticks(first.record.pid) is None


def test_concurrent_starts_from_separate_processes_start_exactly_one(control: AppControl, tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pids = pool.map(_start, [str(tmp_path)] * 4)
    try:
        started = [p for p in pids if p > 0]
        assert len(started) == 1, pids
        assert {abs(p) for p in pids} == set(started)
    finally:
        control.stop(grace_s=5)


def test_a_reused_pid_is_not_mistaken_for_the_app(control: AppControl, tmp_path: Path) -> None:
    import os

    me = os.getpid()
    ticks = proc_start_ticks(me)
    assert ticks is not None
    control.home.mkdir(parents=True)
    control._write_record(AppRecord(me, ticks + 1, time.time(), ["old"], ""))
    assert control.running() is None


def test_a_running_copy_without_a_record_is_adopted_not_duplicated(control: AppControl, tmp_path: Path) -> None:
    first = control.ensure_started(SLEEPER, {}, tmp_path / "log")
    try:
        control.record_path.unlink()  # the starter died between spawn and record
        again = control.ensure_started(SLEEPER, {}, tmp_path / "log")
        assert not again.started and again.record.pid == first.record.pid
    finally:
        control.stop(grace_s=5)


def test_an_adopted_copy_keeps_its_real_start_time_and_a_look_writes_nothing(
    control: AppControl, tmp_path: Path
) -> None:
    """Health judges progress against started_at: an adopted copy started when its process did, not
    when somebody looked. Looking (running(), as health does) takes no lock, so it must not write."""
    first = control.ensure_started(SLEEPER, {}, tmp_path / "log")
    try:
        control.record_path.unlink()  # the starter died between spawn and record
        time.sleep(1.5)
        adopted = control.running()
        assert adopted is not None and adopted.pid == first.record.pid
        assert abs(adopted.started_at - first.record.started_at) < 1.0
        assert not control.record_path.exists()
        again = control.ensure_started(SLEEPER, {}, tmp_path / "log")  # under the lock: recorded now
        assert not again.started and control.record_path.exists()
    finally:
        control.stop(grace_s=5)


def test_restart_replaces_the_running_copy(control: AppControl, tmp_path: Path) -> None:
    first = control.ensure_started(SLEEPER, {}, tmp_path / "log")
    second = control.ensure_started(SLEEPER, {}, tmp_path / "log", restart=True, grace_s=5)
    try:
        assert second.started and second.record.pid != first.record.pid
        assert proc_start_ticks(first.record.pid) is None
    finally:
        control.stop(grace_s=5)


def test_stop_is_remembered_until_the_next_start(control: AppControl, tmp_path: Path) -> None:
    assert control.stop() is None and control.stopped_on_request() is not None
    control.ensure_started(SLEEPER, {}, tmp_path / "log")
    try:
        assert control.stopped_on_request() is None
    finally:
        control.stop(grace_s=5)


def test_a_held_lock_times_out_with_a_sentence(control: AppControl) -> None:
    quick = AppControl("sleeper", control.state_dir, lock_timeout_s=0.5)
    with control.locked(), pytest.raises(TickflowError, match="held the lock"):
        with quick.locked():
            pass


def test_a_starter_killed_while_holding_the_lock_does_not_block_the_next(control: AppControl) -> None:
    import signal
    import subprocess

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from tickflow.appctl import AppControl\n"
         "with AppControl('sleeper', Path(sys.argv[1])).locked():\n"
         "    print('locked', flush=True); time.sleep(60)",
         str(control.state_dir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with control.locked():
        assert time.monotonic() - started < 2


FOREGROUND = (
    "import pathlib, sys, time\n"
    "from tickflow.appctl import AppControl\n"
    "control = AppControl('sleeper', pathlib.Path(sys.argv[1]))\n"
    "record = control.claim(sys.argv, pathlib.Path(sys.argv[1]) / 'fg.log')\n"
    "print('claimed', flush=True)\n"
    "try:\n"
    "    time.sleep(60)\n"
    "finally:\n"
    "    control.release(record)\n"
)


def test_a_foreground_copy_holds_off_a_managed_start_and_stop_ends_it(control: AppControl, tmp_path: Path) -> None:
    """`tickflow stream` in a terminal claims the app: the DAG's start finds it, the DAG's stop ends it."""
    import subprocess

    foreground = subprocess.Popen([sys.executable, "-c", FOREGROUND, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert foreground.stdout is not None and foreground.stdout.readline().strip() == "claimed"
        again = control.ensure_started(SLEEPER, {}, tmp_path / "log")
        assert not again.started and again.record.pid == foreground.pid
        stopped = control.stop(grace_s=10)
        assert stopped is not None and stopped.pid == foreground.pid
        assert proc_start_ticks(foreground.pid) is None  # ended by the SIGTERM (and reaped by stop)
        assert control.running() is None
    finally:
        foreground.kill()


def test_a_foreground_copy_is_refused_while_a_managed_one_runs(control: AppControl, tmp_path: Path) -> None:
    first = control.ensure_started(SLEEPER, {}, tmp_path / "log")
    try:
        with pytest.raises(TickflowError, match=rf"sleeper already runs as pid {first.record.pid}: stop that copy"):
            control.claim(["tickflow", "stream"], tmp_path / "fg.log")
    finally:
        control.stop(grace_s=5)
