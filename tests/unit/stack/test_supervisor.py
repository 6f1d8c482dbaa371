"""The supervisor's bookkeeping with real (tiny) processes: start, health, crash, stop, errors."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tickflow.cli import app as cli_app
from tickflow.cli import stack as cli_stack
from tickflow.processes import session_members
from tickflow.settings import Settings
from tickflow.stack.base import Service, StackError
from tickflow.stack.supervisor import State, Supervisor


class FileFlagService(Service):
    """Healthy once its process has written a flag file; the process is a plain Python sleeper."""

    name = "flag"

    def __init__(self, settings: Settings, script: str, port: int, depends_on: tuple[str, ...] = ()) -> None:
        super().__init__(settings)
        self.script = script
        self.port = port
        self.depends_on = depends_on

    @property
    def ports(self) -> Sequence[int]:
        return (self.port,)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script]

    def check_health(self) -> None:
        if not (self.home / "ready").exists():
            raise RuntimeError("not ready")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", health_timeout_s=5)


READY_THEN_SLEEP = "import pathlib, time; pathlib.Path('ready').write_text('1'); time.sleep(120)"


@pytest.fixture
def stack(settings: Settings) -> Iterator[Supervisor]:
    supervisor = Supervisor(settings, [FileFlagService(settings, READY_THEN_SLEEP, free_port())])
    yield supervisor
    supervisor.down(grace_s=2)


def test_up_starts_waits_and_reports_healthy(stack: Supervisor) -> None:
    (status,) = stack.up()
    assert status.state is State.HEALTHY
    assert status.pid is not None and status.rss_mb is not None and status.rss_mb > 0
    assert status.log.exists()


def test_up_twice_is_harmless(stack: Supervisor) -> None:
    first = stack.up()[0].pid
    events: list[str] = []
    second = stack.up(on_event=lambda service, message: events.append(message))[0].pid
    assert first == second
    assert "already running" in events


def test_down_stops_the_group_and_status_says_stopped(stack: Supervisor) -> None:
    pid = stack.up()[0].pid
    assert pid is not None
    stack.down(grace_s=5)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert stack.status("flag").state is State.STOPPED


def test_status_tells_the_truth_after_a_crash(stack: Supervisor) -> None:
    pid = stack.up()[0].pid
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while stack.status("flag").state is not State.CRASHED and time.monotonic() < deadline:
        os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    assert stack.status("flag").state is State.CRASHED


def test_down_never_signals_a_reused_pid(stack: Supervisor, settings: Settings) -> None:
    """A pid file whose process start time does not match is somebody else's process."""
    stack.up()
    record = stack.paths.pidfile("flag")
    bystander = os.getpid()
    record.write_text(f'{{"pid": {bystander}, "start_ticks": 1, "started_at": 0}}')
    stack.down(grace_s=1)  # must not touch this test process
    assert stack.running_pid("flag") is None


# Listens on loopback itself and starts a child (same session) that listens on every interface.
LOOPBACK_AND_A_WILDCARD_CHILD = """
import pathlib, socket, subprocess, sys, time
own = socket.socket()
own.bind(("127.0.0.1", 0))
own.listen()
child = (
    "import pathlib, socket, time; s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(); "
    "pathlib.Path('wildcard').write_text(str(s.getsockname()[1])); pathlib.Path('ready').write_text('1'); "
    "time.sleep(120)"
)
subprocess.Popen([sys.executable, "-c", child])
time.sleep(120)
"""


def test_status_names_the_ports_a_service_listens_on_beyond_loopback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every process of the service's session counts, and only what is reachable from elsewhere is named."""
    service = FileFlagService(settings, LOOPBACK_AND_A_WILDCARD_CHILD, free_port())
    stack = Supervisor(settings, [service])
    try:
        (status,) = stack.up()
        port = int((service.home / "wildcard").read_text())
        assert [str(listener) for listener in status.exposed] == [f"0.0.0.0:{port}"]
        # `tickflow stack status` names it and exits 1, healthy as the service is.
        monkeypatch.setattr(cli_stack, "supervisor", lambda _settings: stack)
        result = CliRunner().invoke(cli_app, ["stack", "status"], env={"COLUMNS": "200"})
        assert result.exit_code == 1
        assert f"flag (0.0.0.0:{port}) listens beyond loopback" in " ".join(result.output.split())
    finally:
        stack.down(grace_s=2)


def test_status_of_a_service_on_loopback_names_nothing(stack: Supervisor) -> None:
    assert stack.up()[0].exposed == ()


def test_a_service_that_exits_during_start_up_names_its_log(settings: Settings) -> None:
    service = FileFlagService(settings, "import sys; sys.exit(3)", free_port())
    with pytest.raises(StackError, match=r"flag exited during start-up: read .*flag\.log"):
        Supervisor(settings, [service]).up()


def test_a_service_gone_before_its_start_time_was_read_is_not_running(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that exits before /proc is read leaves no start time: it is not running, and up says
    so at once instead of waiting out the health timeout."""
    module = importlib.import_module("tickflow.stack.supervisor")
    monkeypatch.setattr(module, "start_ticks", lambda pid: None)  # exited before /proc was read
    service = FileFlagService(settings, "import sys; sys.exit(3)", free_port())
    stack = Supervisor(settings, [service])
    started = time.monotonic()
    with pytest.raises(StackError, match=r"flag exited during start-up"):
        stack.up()
    assert time.monotonic() - started < 3  # the health timeout is 5 s
    assert stack.running_pid("flag") is None
    assert stack.status("flag").state is State.CRASHED


def test_a_service_that_never_gets_healthy_times_out_naming_its_log(settings: Settings) -> None:
    service = FileFlagService(settings, "import time; time.sleep(60)", free_port())
    supervisor = Supervisor(settings, [service])
    try:
        with pytest.raises(StackError, match=r"did not become healthy within 5s: read .*flag\.log"):
            supervisor.up()
    finally:
        supervisor.down(grace_s=2)


def test_a_taken_port_fails_fast_with_one_sentence(settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        service = FileFlagService(settings, READY_THEN_SLEEP, port)
        with pytest.raises(StackError, match=f"127.0.0.1:{port} is already taken"):
            Supervisor(settings, [service]).up()
        assert Supervisor(settings, [service]).status("flag").state is State.FOREIGN


def test_dependencies_come_first_and_unknown_names_are_refused(settings: Settings) -> None:
    base = FileFlagService(settings, READY_THEN_SLEEP, free_port())
    top = FileFlagService(settings, READY_THEN_SLEEP, free_port(), depends_on=("flag",))
    top.name = "top"
    supervisor = Supervisor(settings, [top, base])
    assert [s.name for s in supervisor.ordered(["top"])] == ["flag", "top"]
    with pytest.raises(StackError, match="no service called 'nope'"):
        supervisor.ordered(["nope"])


def test_down_stops_what_depends_on_a_service_and_leaves_what_it_depends_on(settings: Settings) -> None:
    base = FileFlagService(settings, READY_THEN_SLEEP, free_port())
    top = FileFlagService(settings, READY_THEN_SLEEP, free_port(), depends_on=("flag",))
    top.name = "top"
    supervisor = Supervisor(settings, [top, base])
    supervisor.up()
    try:
        supervisor.down(["top"], grace_s=2)  # the dependent alone: its dependency keeps running
        assert [supervisor.status(n).state for n in ("flag", "top")] == [State.HEALTHY, State.STOPPED]
        supervisor.up()
        supervisor.down(["flag"], grace_s=2)  # a dependency: what needs it stops first
        assert [supervisor.status(n).state for n in ("flag", "top")] == [State.STOPPED, State.STOPPED]
    finally:
        supervisor.down(grace_s=2)


class PoliteService(FileFlagService):
    """Stops on its own when asked through a file, as HBase does with ``HMaster stop``; ignores SIGTERM."""

    def shutdown(self) -> bool:
        (self.home / "stop").write_text("1")
        return True


POLITE = (
    "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path('ready').write_text('1')\n"
    "while not pathlib.Path('stop').exists(): time.sleep(0.05)"
)


def test_down_uses_the_services_own_clean_stop(settings: Settings) -> None:
    stack = Supervisor(settings, [PoliteService(settings, POLITE, free_port())])
    stack.up()
    events: list[str] = []
    started = time.monotonic()
    stack.down(grace_s=5, on_event=lambda service, message: events.append(message))
    assert events == ["stopping", "stopped"]  # exited by itself: SIGTERM is ignored, KILL would say "killed"
    assert time.monotonic() - started < 4


class FailingStopService(FileFlagService):
    def shutdown(self) -> bool:
        raise RuntimeError("no route to the master")


def test_a_failed_clean_stop_falls_back_to_signals(settings: Settings) -> None:
    stack = Supervisor(settings, [FailingStopService(settings, READY_THEN_SLEEP, free_port())])
    stack.up()
    events: list[str] = []
    stack.down(grace_s=5, on_event=lambda service, message: events.append(message))
    assert events[1].startswith("clean shutdown failed (no route to the master)")
    assert events[-1] == "stopped"
    assert stack.status("flag").state is State.STOPPED


def test_two_concurrent_ups_start_one_process(settings: Settings) -> None:
    """Two `stack up`s at once (a person and a test session, say): the second waits and finds it running."""
    script = (
        "import os, pathlib, time; pathlib.Path('starts').open('a').write(f'{os.getpid()}\\n'); "
        "time.sleep(0.5); pathlib.Path('ready').write_text('1'); time.sleep(120)"
    )
    port = free_port()
    stacks = [Supervisor(settings, [FileFlagService(settings, script, port)]) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            pids = list(pool.map(lambda stack: stack.up()[0].pid, stacks))
        assert pids[0] == pids[1]
        assert len((settings.root / "flag" / "starts").read_text().split()) == 1
    finally:
        stacks[0].down(grace_s=2)


def test_up_after_a_hard_kill_clears_what_the_last_run_left(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill -9 of a service's leader leaves its children for a moment (PostgreSQL's postmaster under
    ``runuser``); the next ``up`` waits for them, then kills them, instead of failing on what they hold."""
    port = free_port()
    holds_the_port = (
        "import socket, subprocess, sys, pathlib, time;"
        f"subprocess.Popen([sys.executable, '-c', 'import socket, time; s = socket.socket();"
        f' s.bind(("127.0.0.1", {port})); s.listen(); time.sleep(120)\']);'
        "pathlib.Path('ready').write_text('1'); time.sleep(120)"
    )
    stack = Supervisor(settings, [FileFlagService(settings, holds_the_port, port)])
    monkeypatch.setattr(importlib.import_module("tickflow.stack.supervisor"), "LEFTOVER_GRACE_S", 0.5)
    try:
        leader = stack.up()[0].pid
        assert leader is not None
        deadline = time.monotonic() + 5
        while len(session_members(leader)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(leader, signal.SIGKILL)  # the leader only: its child keeps the port
        while stack.running_pid("flag") is not None:
            time.sleep(0.05)
        events: list[str] = []
        (status,) = stack.up(on_event=lambda service, message: events.append(message))
        assert status.state is State.HEALTHY and status.pid != leader
        assert "cleared what was left of its last run" in events
        assert session_members(leader) == []
    finally:
        stack.down(grace_s=2)


def test_a_service_found_running_that_exits_while_up_waits_is_started_again(settings: Settings) -> None:
    """A service on its way down when ``up`` looks (Airflow's triggerer after PostgreSQL died) is
    started anew instead of failing the ``up``."""
    first_run_dies = (
        "import pathlib, sys, time; runs = pathlib.Path('runs');"
        "n = len(runs.read_text()) if runs.exists() else 0; runs.write_text('x' * (n + 1));"
        "time.sleep(1.0) if n == 0 else None; sys.exit(1) if n == 0 else None;"
        "pathlib.Path('ready').write_text('1'); time.sleep(120)"
    )
    service = FileFlagService(settings, first_run_dies, free_port())
    stack = Supervisor(settings, [service])
    try:
        service.prepare()
        stack.paths.run.mkdir(parents=True)
        stack._spawn(service)  # running from before, not yet healthy, about to exit
        events: list[str] = []
        (status,) = stack.up(on_event=lambda name, message: events.append(message))
        assert status.state is State.HEALTHY
        assert events[:2] == ["already running", "exited while up waited for it"]
        assert (service.home / "runs").read_text() == "xx"
    finally:
        stack.down(grace_s=2)


def test_a_service_started_in_the_other_mode_is_named_at_once(stack: Supervisor, settings: Settings) -> None:
    """Flipping TICKFLOW_SECURED under a running stack: one sentence, not a health check's timeout."""
    stack.up()
    secured = Supervisor(settings.model_copy(update={"secured": True}), list(stack.services.values()))
    with pytest.raises(StackError, match=r"flag runs outside secured mode but TICKFLOW_SECURED is now true: stop"):
        secured.up()
