"""Process mechanics shared by the stack's services and the long-running apps (``tickflow.appctl``).

Everything tickflow starts runs in a session of its own (``start_new_session``), so one
``/proc`` scan finds all its processes, including those that moved to a process group of their
own (Spark's Python worker daemon). A process is identified by its pid *and* its start time in
clock ticks, so a pid the kernel reused for somebody else is never mistaken for ours.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tickflow.errors import TickflowError
from tickflow.retry import wait_for, within


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], session [3]), None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot, or None when it is gone (or a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":  # a zombie has exited; only its parent has not reaped it yet
        return None
    return int(fields[19])


def started_at(ticks: int) -> float:
    """The epoch time of a process start given in clock ticks since boot."""
    lines = Path("/proc/stat").read_text().splitlines()
    boot = next(int(line.split()[1]) for line in lines if line.startswith("btime"))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def session_members(sid: int, zombies: bool = False) -> list[int]:
    """Live processes of a session; with ``zombies``, also those exited but not yet reaped."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(int(stat.parent.name))
        if fields is not None and (zombies or fields[0] != "Z") and int(fields[3]) == sid:
            members.append(int(stat.parent.name))
    return members


def session_rss_mb(sid: int) -> float:
    """Resident memory of every process of the session (a JVM, or spark-submit, its JVM and workers)."""
    total_kb = 0
    for pid in session_members(sid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kb / 1024


def spawn(name: str, command: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path | None = None) -> int:
    """Start ``command`` in a session of its own, output appended to ``log`` after a banner line; its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n==== tickflow: starting {name} at {time.ctime()} ====\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: stop finds and signals the whole tree
            close_fds=True,
        )
    return proc.pid


def _members(sid: int) -> list[int]:
    """The session's processes, and the process ``sid`` itself when it is no session leader (an app run
    in a person's terminal, in the terminal's session)."""
    members = session_members(sid)
    if sid not in members and start_ticks(sid) is not None:
        members.append(sid)
    return members


def _signal_session(sid: int, sig: signal.Signals) -> None:
    for pid in _members(sid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap(pid: int) -> None:
    """Collect the exit status when the process is a child of this very process (tests, the CLI)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_session(sid: int, timeout_s: float) -> bool:
    """Wait until every process of the session has exited; False when some are left after ``timeout_s``."""

    def gone() -> bool:
        _reap(sid)
        return not _members(sid)

    return within(gone, timeout_s, interval_s=0.3)


def clear_leftovers(sid: int, grace_s: float) -> bool:
    """Wait for the processes of a session whose leader is gone (killed hard: its children exit a moment
    later), SIGKILL what is left after ``grace_s``; True when there were any.

    Zombies count until reaped: PostgreSQL refuses to start while the pid of its old postmaster exists.
    """
    if start_ticks(sid) is not None or not session_members(sid, zombies=True):
        return False  # the leader runs (or its pid now belongs to another process), or nothing is left

    def gone() -> bool:
        _reap(sid)
        return not session_members(sid, zombies=True)

    if not within(gone, grace_s, interval_s=0.2):
        _signal_session(sid, signal.SIGKILL)
        wait_session(sid, grace_s)
    return True


def stop_session(sid: int, grace_s: float) -> bool:
    """SIGTERM every process of the session, wait, then SIGKILL what is left. True when TERM was enough."""
    _signal_session(sid, signal.SIGTERM)
    if wait_session(sid, grace_s):
        _reap(sid)  # it may have exited between the two looks
        return True
    while _members(sid):
        _signal_session(sid, signal.SIGKILL)
        _reap(sid)
        time.sleep(0.1)
    _reap(sid)
    return False


@contextmanager
def exclusive(lock: Path, timeout_s: float, what: str) -> Iterator[None]:
    """Hold ``lock`` (flock) exclusively, waiting for another holder up to ``timeout_s``.

    ``what`` names what the lock guards, for the one sentence said when the wait times out.
    """
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a+") as handle:

        def locked() -> bool:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True

        wait_for(
            locked,
            timeout_s,
            interval_s=0.2,
            retry_if=lambda error: isinstance(error, BlockingIOError),
            timed_out=lambda _: TickflowError(
                f"Another process has held the lock of {what} for {timeout_s:.0f}s: "
                f"find it with `fuser {lock}` and let it finish or stop it."
            ),
        )
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
