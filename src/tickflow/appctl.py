"""Long-running applications (the enrichment stream) started detached, found again, stopped.

Whoever starts the app (an Airflow task, a person) may die right after; the app must
outlive it and nobody may ever start a second copy. Airflow alone cannot promise that:
a task can run twice when a scheduler restarts or a zombie is re-queued (apache/airflow
#17479), and remembering the submission in Airflow's own state leaves a window between
"submitted" and "recorded" in which a retry submits again (#67118). So the guarantee
lives here, on the machine that runs the app:

- ``<state>/apps/<name>/lock`` is held with ``flock`` around every check-then-start and
  stop. The kernel releases it when the holder dies, so a killed task never leaves a stale
  lock and the next caller simply goes ahead.
- ``<state>/apps/<name>/app.json`` records the pid *and* the kernel start time of the app's
  session leader; a reused pid is not mistaken for the app.
- The app's environment carries ``TICKFLOW_APP=<name>@<state dir>``; if the record is lost
  (a crash between spawn and write), a scan of ``/proc`` finds the running copy and adopts it
  instead of starting another.
- The app runs in its own session, so stopping it stops spark-submit, its JVM and its Python
  workers together (every process of the session), and the caller's exit does not touch it.
- ``desired.json`` remembers an explicit stop, so a scheduled watchdog does not resurrect an
  app somebody stopped on purpose; an explicit start clears it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from tickflow.errors import TickflowError
from tickflow.processes import exclusive, spawn, start_ticks, started_at, stop_session

APP_MARKER = "TICKFLOW_APP"


@dataclass(frozen=True)
class AppRecord:
    pid: int
    start_ticks: int
    started_at: float
    command: list[str]
    log: str

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.start_ticks


@dataclass(frozen=True)
class StartResult:
    started: bool
    record: AppRecord
    reason: str


class AppControl:
    """Start-once, find, stop for one named application under a state directory."""

    def __init__(self, name: str, state_dir: Path, lock_timeout_s: float = 120.0) -> None:
        self.name = name
        self.state_dir = state_dir
        self.home = state_dir / "apps" / name
        self.lock_timeout_s = lock_timeout_s

    @property
    def marker(self) -> str:
        return f"{self.name}@{self.state_dir}"

    @property
    def record_path(self) -> Path:
        return self.home / "app.json"

    @property
    def desired_path(self) -> Path:
        return self.home / "desired.json"

    # -- the lock --------------------------------------------------------------------

    def locked(self) -> AbstractContextManager[None]:
        """Exclusive hold of this app's lock; waits for another holder up to lock_timeout_s."""
        return exclusive(self.home / "lock", self.lock_timeout_s, self.name)

    # -- finding the app -------------------------------------------------------------

    def _read_record(self) -> AppRecord | None:
        try:
            return AppRecord(**json.loads(self.record_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _write_record(self, record: AppRecord) -> None:
        partial = self.record_path.with_suffix(".partial")
        partial.write_text(json.dumps(record.__dict__))
        partial.replace(self.record_path)

    def _marked_processes(self) -> list[int]:
        """Pids whose environment carries this app's marker (any process of the app)."""
        needle = f"{APP_MARKER}={self.marker}".encode()
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if needle in environ.read_bytes().split(b"\0"):
                    found.append(int(environ.parent.name))
            except (OSError, ValueError):
                continue
        return found

    def _adopt_orphan(self) -> AppRecord | None:
        """A running copy without a record (its starter died before writing it): a marked session leader.

        Only the leader counts: what is left of a killed app (a worker daemon finishing) is not the app.
        Nothing is written here (health looks without the lock); a start under the lock records it.
        """
        for pid in self._marked_processes():
            try:
                leader = os.getsid(pid) == pid
            except ProcessLookupError:
                continue
            ticks = start_ticks(pid)
            if not leader or ticks is None:
                continue
            # When the process started (not now): health weighs the app's progress against it.
            return AppRecord(pid, ticks, started_at(ticks), ["(adopted)"], "")
        return None

    def running(self) -> AppRecord | None:
        """The running copy, if any (by record, else by marker)."""
        record = self._read_record()
        if record is not None and record.alive():
            return record
        return self._adopt_orphan()

    # -- desired state ---------------------------------------------------------------

    def stopped_on_request(self) -> float | None:
        """When somebody last stopped the app on purpose (and nobody started it since), else None."""
        try:
            when: float = json.loads(self.desired_path.read_text())["stopped_at"]
        except (OSError, ValueError, KeyError):
            return None
        return when

    # -- start and stop --------------------------------------------------------------

    def ensure_started(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        cwd: Path | None = None,
        restart: bool = False,
        grace_s: float = 60.0,
        before_start: Callable[[], object] | None = None,
    ) -> StartResult:
        """Start the app unless a copy runs (``restart``: stop that copy first).

        The check, the stop and the start are one step under the lock, so no other start slips in;
        ``before_start`` runs in that step once no copy runs (e.g. to replace the app's checkpoint).
        """
        with self.locked():
            self.desired_path.unlink(missing_ok=True)
            existing = self.running()
            if existing is not None and not restart:
                if self._read_record() != existing:  # adopted: record it, under the lock
                    self._write_record(existing)
                return StartResult(False, existing, f"already running as pid {existing.pid}")
            if existing is not None:
                stop_session(existing.pid, grace_s)
                self.record_path.unlink(missing_ok=True)
            if before_start is not None:
                before_start()
            pid = spawn(self.name, command, {**env, APP_MARKER: self.marker}, log, cwd=cwd)
            ticks = start_ticks(pid)
            if ticks is None:
                raise TickflowError(f"{self.name} exited at once: read {log} for the cause.")
            record = AppRecord(pid, ticks, time.time(), list(command), str(log))
            self._write_record(record)
            return StartResult(True, record, f"started as pid {pid}")

    def claim(self, command: Sequence[str], log: Path) -> AppRecord:
        """Record the calling process as the running copy (an app run in the foreground), under the lock;
        refuses when a copy runs. ``stop`` then signals this process; ``release`` forgets it at exit."""
        with self.locked():
            existing = self.running()
            if existing is not None:
                raise TickflowError(
                    f"{self.name} already runs as pid {existing.pid}: stop that copy first "
                    "(for the enrichment stream, `tickflow stream stop`)."
                )
            self.desired_path.unlink(missing_ok=True)
            pid = os.getpid()
            ticks = start_ticks(pid)
            assert ticks is not None  # this very process
            record = AppRecord(pid, ticks, started_at(ticks), list(command), str(log))
            self._write_record(record)
            return record

    def release(self, record: AppRecord) -> None:
        """Forget ``record`` (a claimed foreground copy that ends) unless another copy replaced it."""
        with self.locked():
            if self._read_record() == record:
                self.record_path.unlink(missing_ok=True)

    def stop(self, grace_s: float = 60.0, on_request: bool = True) -> AppRecord | None:
        """SIGTERM the app's session (the app stops after its current batch), SIGKILL after grace_s.

        Returns the record of what was stopped, or None when nothing ran.
        """
        with self.locked():
            if on_request:
                self.desired_path.write_text(json.dumps({"stopped_at": time.time()}))
            record = self.running()
            if record is None:
                return None
            stop_session(record.pid, grace_s)
            self.record_path.unlink(missing_ok=True)
            return record


def stop_all(state_dir: Path, grace_s: float) -> list[str]:
    """Stop every app of this state directory that runs (not as a request: schedulers may start them
    again); returns the names of those stopped. ``tickflow stack down`` calls it before the services go."""
    apps = state_dir / "apps"
    names = sorted(home.name for home in apps.iterdir()) if apps.is_dir() else []
    return [name for name in names if AppControl(name, state_dir).stop(grace_s, on_request=False) is not None]
