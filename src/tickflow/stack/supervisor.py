"""Starts, watches and stops the services of the local stack.

Each service runs in a session of its own (``tickflow.processes``) with stdout/stderr in
``<state>/logs/<service>.log``. A pid file records the pid together with the
kernel's start time of that process, so that ``down`` never signals a process it
did not start (pids get reused) and ``status`` can tell a crash from a stop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tickflow.processes import (
    clear_leftovers,
    exclusive,
    port_in_use,
    session_rss_mb,
    spawn,
    start_ticks,
    stop_session,
    wait_session,
)
from tickflow.retry import wait_for
from tickflow.settings import Settings
from tickflow.stack.base import Service, StackError, StatePaths
from tickflow.stack.listeners import Listener, beyond_loopback, session_listeners

STACK_LOCK_TIMEOUT_S = 1800.0
# A service killed hard leaves children that exit a moment after its session leader; wait this long for them.
LEFTOVER_GRACE_S = 10.0


class State(StrEnum):
    HEALTHY = "healthy"
    STARTING = "running, not healthy"
    CRASHED = "crashed"
    STOPPED = "stopped"
    FOREIGN = "port taken by another process"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: State
    address: str
    pid: int | None
    rss_mb: float | None
    log: Path
    # Ports its processes listen on beyond loopback (any interface, or one other machines reach).
    exposed: tuple[Listener, ...] = ()


class Supervisor:
    """Brings a set of services up in dependency order and down in reverse."""

    def __init__(self, settings: Settings, services: Sequence[Service]) -> None:
        self.settings = settings
        self.paths = StatePaths(settings.root)
        self.services = {s.name: s for s in services}

    # -- bookkeeping -------------------------------------------------------------

    def _read_pid(self, name: str) -> dict[str, Any] | None:
        path = self.paths.pidfile(name)
        try:
            record: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return record

    def running_pid(self, name: str) -> int | None:
        """The pid of the process this stack started for ``name``, if it still runs."""
        record = self._read_pid(name)
        if not record or record.get("start_ticks") is None:  # gone before its start time could be read
            return None
        if start_ticks(record["pid"]) == record["start_ticks"]:
            return int(record["pid"])
        return None

    def status(self, name: str) -> ServiceStatus:
        service = self.services[name]
        pid = self.running_pid(name)
        if pid is not None:
            state = State.HEALTHY if service.healthy() else State.STARTING
            rss = session_rss_mb(pid)
            exposed = tuple(beyond_loopback(session_listeners(pid)))
        else:
            rss = None
            exposed = ()
            if any(port_in_use(service.host, p) for p in service.ports):
                state = State.FOREIGN
            elif self._read_pid(name) is not None:
                state = State.CRASHED
            else:
                state = State.STOPPED
        return ServiceStatus(name, state, service.address, pid, rss, service.log_path, exposed)

    def require(self, names: Collection[str]) -> None:
        """Fail at once, naming the first of these services that nothing listens for (their clients retry for
        many seconds against a closed port before they give up, and then say less)."""
        for service in self.ordered(names):
            asked = service.name in names or service.group in names
            if asked and service.ports and not port_in_use(service.host, service.ports[0]):
                raise StackError(
                    f"{service.name} is not running (nothing listens at {service.host}:{service.ports[0]}): "
                    f"start it with `tickflow stack up {service.name}`."
                )

    def ordered(self, names: Iterable[str] | None = None) -> list[Service]:
        """Services in dependency order, including the dependencies of those asked for."""
        order: list[Service] = []

        def visit(name: str) -> None:
            members = [s for s in self.services.values() if name in (s.name, s.group)]
            if not members:
                raise StackError(f"There is no service called {name!r}: choose one of {', '.join(self.services)}.")
            for service in members:
                for dep in service.depends_on:
                    visit(dep)
                if service not in order:
                    order.append(service)

        for name in names or self.services:
            visit(name)
        return order

    def with_dependents(self, names: Iterable[str] | None = None) -> list[Service]:
        """Services in dependency order: those asked for (all without names) and every service that needs
        one of them, directly or not."""
        if not names:
            return self.ordered()
        asked = set(names)
        wanted = {s.name for s in self.ordered(names) if asked & {s.name, s.group}}  # checks the names

        def with_groups(services: set[str]) -> set[str]:  # what a depends_on may name: services and their groups
            return services | {self.services[name].group for name in services}

        while True:
            needed = with_groups(wanted)
            if not (dependents := {s.name for s in self.services.values() if needed & set(s.depends_on)} - wanted):
                break
            wanted |= dependents
        return [service for service in self.ordered() if service.name in wanted]

    # -- up ------------------------------------------------------------------------

    def up(
        self,
        names: Iterable[str] | None = None,
        on_event: Callable[[str, str], None] = lambda service, message: None,
    ) -> list[ServiceStatus]:
        """Start what is not running and wait until every service answers its health check.

        One ``up`` or ``down`` at a time per state directory: a second one (another terminal, a test
        session, a DAG) waits, then finds running what the first started.
        """
        for directory in (self.paths.lib, self.paths.logs, self.paths.run):
            directory.mkdir(parents=True, exist_ok=True)
        with self._exclusive():
            order = self.ordered(names)
            launched: set[str] = set()
            for service in order:
                if service.name in launched:
                    self._wait_started(service, on_event)
                elif self.running_pid(service.name) is not None:
                    self._check_mode(service)
                    on_event(service.name, "already running")
                    if not self._wait_healthy(service, on_event):
                        # It was on its way down (what it needs had just died): start it anew.
                        on_event(service.name, "exited while up waited for it")
                        self._start(service, on_event)
                else:
                    # Members of a quorum (the cluster profile's brokers) answer only once a majority runs.
                    peers = [
                        peer
                        for peer in order
                        if service.starts_with_peers
                        and peer.group == service.group
                        and peer is not service
                        and peer.name not in launched
                        and self.running_pid(peer.name) is None
                    ]
                    for member in (service, *peers):
                        self._launch(member, on_event)
                        launched.add(member.name)
                    self._wait_started(service, on_event)
                service.bootstrap()
        return [self.status(s.name) for s in self.ordered(names)]

    def _exclusive(self) -> AbstractContextManager[None]:
        # A first `up` downloads every artifact: let a second command wait that long rather than fail.
        return exclusive(self.paths.run / "stack.lock", STACK_LOCK_TIMEOUT_S, f"the stack in {self.settings.root}")

    def _check_mode(self, service: Service) -> None:
        """A service started in the other mode (TICKFLOW_SECURED) or profile (TICKFLOW_PROFILE) would only time
        out on its health check."""
        record = self._read_pid(service.name) or {}
        started_profile = record.get("profile", "local")
        if started_profile != self.settings.profile:
            raise StackError(
                f"{service.name} runs in the {started_profile} profile but TICKFLOW_PROFILE is now "
                f"{self.settings.profile}: stop the stack with `tickflow stack down` first, or set TICKFLOW_PROFILE "
                "as it was."
            )
        started_secured = bool(record.get("secured", False))
        if started_secured != self.settings.secured:
            raise StackError(
                f"{service.name} runs {'in' if started_secured else 'outside'} secured mode but TICKFLOW_SECURED "
                f"is now {str(self.settings.secured).lower()}: stop the stack with `tickflow stack down` first, "
                "or set TICKFLOW_SECURED as it was."
            )

    def _check_ports(self, service: Service) -> None:
        for port in service.ports:
            if port_in_use(service.host, port):
                raise StackError(
                    f"{service.name} cannot start because {service.host}:{port} is already taken "
                    "by a process this stack did not start: stop that process or choose another port "
                    "with the matching TICKFLOW_PORT_* variable."
                )

    def _spawn(self, service: Service) -> None:
        service.home.mkdir(parents=True, exist_ok=True)
        env = service.process_environment()
        pid = spawn(service.name, service.command(), env, service.log_path, cwd=service.home)
        started = {
            "pid": pid,
            "start_ticks": start_ticks(pid),
            "started_at": time.time(),
            "secured": self.settings.secured,  # up refuses to mix modes and profiles (_check_mode)
            "profile": self.settings.profile,
        }
        self.paths.pidfile(service.name).write_text(json.dumps(started))

    def _start(self, service: Service, on_event: Callable[[str, str], None]) -> None:
        self._launch(service, on_event)
        self._wait_started(service, on_event)

    def _launch(self, service: Service, on_event: Callable[[str, str], None]) -> None:
        if (record := self._read_pid(service.name)) and clear_leftovers(record["pid"], LEFTOVER_GRACE_S):
            on_event(service.name, "cleared what was left of its last run")
        self._check_ports(service)
        on_event(service.name, "preparing")
        service.prepare()
        on_event(service.name, "starting")
        self._spawn(service)

    def _wait_started(self, service: Service, on_event: Callable[[str, str], None]) -> None:
        if not self._wait_healthy(service, on_event):
            raise StackError(f"{service.name} exited during start-up: read {service.log_path} for the cause.")

    def _wait_healthy(self, service: Service, on_event: Callable[[str, str], None]) -> bool:
        """True once the service answers its health check; False if its process exits first."""
        started, timeout_s = time.monotonic(), self.settings.health_timeout_s

        def answered() -> str | None:
            if service.healthy():
                return "healthy"
            return "exited" if self.running_pid(service.name) is None else None

        outcome = wait_for(answered, timeout_s, interval_s=1.0, timed_out=lambda _: StackError(
            f"{service.name} did not become healthy within {timeout_s:.0f}s: read {service.log_path} for the cause."
        ))  # fmt: skip
        if outcome == "healthy":
            on_event(service.name, f"healthy after {time.monotonic() - started:.1f}s")
        return outcome == "healthy"

    # -- down ----------------------------------------------------------------------

    def down(
        self,
        names: Iterable[str] | None = None,
        on_event: Callable[[str, str], None] = lambda service, message: None,
        grace_s: float = 30.0,
    ) -> None:
        """Stop, in reverse dependency order, only the process groups this stack started: the services
        named (all without names) and those that depend on them, never what they depend on."""
        self.paths.run.mkdir(parents=True, exist_ok=True)
        with self._exclusive():
            for service in reversed(self.with_dependents(names)):
                pid = self.running_pid(service.name)
                pidfile = self.paths.pidfile(service.name)
                if pid is None:
                    pidfile.unlink(missing_ok=True)
                    continue
                on_event(service.name, "stopping")
                if self._shut_down(service, on_event) and wait_session(pid, grace_s):
                    stopped = True
                else:
                    stopped = stop_session(pid, grace_s)
                pidfile.unlink(missing_ok=True)
                on_event(service.name, "stopped" if stopped else "killed after grace period")

    @staticmethod
    def _shut_down(service: Service, on_event: Callable[[str, str], None]) -> bool:
        """The service's own clean stop, if it has one; a failure of it falls back to signals."""
        try:
            return service.shutdown()
        except Exception as error:  # noqa: BLE001 - any failure means: stop it with signals instead
            on_event(service.name, f"clean shutdown failed ({error}); sending SIGTERM")
            return False
