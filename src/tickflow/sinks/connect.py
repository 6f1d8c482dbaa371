"""A small client of Kafka Connect's REST API: put a connector's config, read its state, delete it.

Connect's distributed herder answers 409 while the workers rebalance (a config just written, a
worker joining); those calls are retried for a few seconds. Everything else that goes wrong is
one sentence naming the worker and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from tickflow.errors import TickflowError
from tickflow.retry import WaitTimeout, wait_for


class ConnectorState(StrEnum):
    """A connector's or a task's state as Kafka Connect's REST API reports it."""

    UNASSIGNED = "UNASSIGNED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    RESTARTING = "RESTARTING"


class ConnectError(TickflowError):
    """Kafka Connect refused a request or did not answer."""


@dataclass(frozen=True)
class TaskState:
    id: int
    state: ConnectorState
    worker_id: str
    trace: str | None = None

    @property
    def reason(self) -> str | None:
        """The first line of a failed task's trace (the exception and its message)."""
        return self.trace.strip().splitlines()[0] if self.trace and self.trace.strip() else None


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    state: ConnectorState
    worker_id: str
    tasks: tuple[TaskState, ...]
    trace: str | None = None
    type: str = ""

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ConnectorStatus:
        connector = body["connector"]
        tasks = tuple(
            TaskState(int(t["id"]), ConnectorState(t["state"]), t.get("worker_id", ""), t.get("trace"))
            for t in sorted(body.get("tasks", []), key=lambda t: int(t["id"]))
        )
        state = ConnectorState(connector["state"])
        return cls(
            body["name"], state, connector.get("worker_id", ""), tasks, connector.get("trace"), body.get("type", "")
        )

    @property
    def running(self) -> bool:
        return (
            self.state == ConnectorState.RUNNING
            and bool(self.tasks)
            and all(t.state == ConnectorState.RUNNING for t in self.tasks)
        )

    @property
    def failures(self) -> list[str]:
        """One line per failed part: the connector or a task, with the first line of its trace."""
        lines = []
        if self.state == ConnectorState.FAILED:
            first = self.trace.strip().splitlines()[0] if self.trace and self.trace.strip() else "no trace"
            lines.append(f"connector {self.name}: {first}")
        lines += [f"task {t.id}: {t.reason or 'no trace'}" for t in self.tasks if t.state == ConnectorState.FAILED]
        return lines

    def rows(self) -> list[tuple[str, ConnectorState, str, str]]:
        """What a person reads: (part, state, worker, first line of the trace), the connector first."""
        first = self.trace.strip().splitlines()[0] if self.trace and self.trace.strip() else ""
        parts = [("connector", self.state, self.worker_id, first if self.state == ConnectorState.FAILED else "")]
        parts += [(f"task {t.id}", t.state, t.worker_id, t.reason or "") for t in self.tasks]
        return parts


def failures(statuses: Sequence[ConnectorStatus]) -> list[str]:
    """Every failed part of every connector, named (empty when none failed). A failed connector stays
    failed until somebody restarts it: Connect retries nothing by itself."""
    return [f"{status.name} {line}" for status in statuses for line in status.failures]


def parse_statuses(body: Mapping[str, Any]) -> list[ConnectorStatus]:
    """``GET /connectors?expand=status`` (name -> {"status": ...}) as statuses, by name."""
    return [ConnectorStatus.from_json(body[name]["status"]) for name in sorted(body) if "status" in body[name]]


class ConnectClient:
    """Kafka Connect's REST API at ``urls``: the distributed workers of one cluster, any of which answers for
    all (a follower forwards to the leader); the next is asked when one does not answer."""

    def __init__(self, urls: str | Sequence[str], timeout_s: float = 15.0, rebalance_wait_s: float = 30.0) -> None:
        self.urls = [url.rstrip("/") for url in ([urls] if isinstance(urls, str) else urls)]
        self.timeout_s = timeout_s
        self.rebalance_wait_s = rebalance_wait_s

    @property
    def url(self) -> str:
        """The worker asked first: the one that answered last."""
        return self.urls[0]

    def _send(self, method: str, path: str, body: Any) -> httpx.Response:
        failure: httpx.HTTPError | None = None
        for url in list(self.urls):
            try:
                response = httpx.request(method, f"{url}{path}", json=body, timeout=self.timeout_s)
            except httpx.HTTPError as error:
                failure = error
                continue
            self.urls.remove(url)
            self.urls.insert(0, url)
            return response
        workers = " or ".join(self.urls)
        raise ConnectError(
            f"Kafka Connect at {workers} did not answer ({type(failure).__name__}): "
            "start it with `tickflow stack up connect`."
        ) from failure

    def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        last: httpx.Response | None = None

        def answered() -> httpx.Response | None:
            nonlocal last
            last = self._send(method, path, body)
            return None if last.status_code == 409 else last  # rebalancing: it takes requests again in a moment

        try:
            return wait_for(answered, self.rebalance_wait_s, interval_s=0.5)
        except WaitTimeout:
            assert last is not None
            return last  # still 409 after the wait: the caller says what it could not do

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            return str(response.json().get("message", response.text))
        except ValueError:
            return response.text

    def put_config(self, name: str, config: Mapping[str, str]) -> bool:
        """Create or update connector ``name``; True if it was created."""
        response = self._request("PUT", f"/connectors/{name}/config", dict(config))
        if response.status_code in (200, 201):
            return response.status_code == 201
        message = self._message(response)
        if "Failed to find any class that implements Connector" in message:
            raise ConnectError(
                f"The Connect worker at {self.url} has no plugin {config.get('connector.class')}: restart it "
                "(`tickflow stack down connect && tickflow stack up connect`) so that it installs the plugin."
            )
        raise ConnectError(f"Kafka Connect refused the config of {name} (HTTP {response.status_code}): {message}")

    def status(self, name: str) -> ConnectorStatus | None:
        """The connector's and its tasks' states, or None when there is no such connector."""
        response = self._request("GET", f"/connectors/{name}/status")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ConnectError(
                f"Kafka Connect did not give the status of {name} (HTTP {response.status_code}): "
                f"{self._message(response)}"
            )
        return ConnectorStatus.from_json(response.json())

    def statuses(self) -> list[ConnectorStatus]:
        """Every connector's and its tasks' states, in one request."""
        response = self._request("GET", "/connectors?expand=status")
        if response.status_code != 200:
            raise ConnectError(
                f"Kafka Connect did not list its connectors (HTTP {response.status_code}): {self._message(response)}"
            )
        return parse_statuses(response.json())

    def task_configs(self, name: str) -> list[dict[str, str]]:
        response = self._request("GET", f"/connectors/{name}/tasks")
        if response.status_code != 200:
            return []
        return [task["config"] for task in response.json()]

    def restart_failed(self, name: str) -> None:
        """Restart the connector's failed parts, connector and tasks (Connect restarts nothing by itself)."""
        self.restart(name, only_failed=True)

    def restart(self, name: str, only_failed: bool = False) -> None:
        """Restart the connector and its tasks (or only the failed ones): each task configures itself again, e.g.
        a converter looks up the subject's latest registered schema."""
        flags = "includeTasks=true" + ("&onlyFailed=true" if only_failed else "")
        response = self._request("POST", f"/connectors/{name}/restart?{flags}")
        if response.status_code == 404:
            raise ConnectError(f"Connector {name} is not deployed: `tickflow connect deploy` creates it.")
        if response.status_code not in (200, 202, 204):
            raise ConnectError(
                f"Kafka Connect did not restart {name} (HTTP {response.status_code}): {self._message(response)}"
            )

    def delete(self, name: str) -> bool:
        """Delete connector ``name`` (its committed offsets stay in Connect's offsets topic); True if it existed."""
        response = self._request("DELETE", f"/connectors/{name}")
        if response.status_code in (200, 204):
            return True
        if response.status_code == 404:
            return False
        raise ConnectError(f"Kafka Connect did not delete {name} (HTTP {response.status_code}): "
                           f"{self._message(response)}")  # fmt: skip

    def wait_running(
        self, name: str, config: Mapping[str, str], tasks: int, timeout_s: float, poll_s: float = 0.5
    ) -> ConnectorStatus:
        """Wait until the connector and ``tasks`` tasks run with ``config``; fail at the first failed part."""
        last: ConnectorStatus | None = None

        def running() -> ConnectorStatus | None:
            nonlocal last
            last = self.status(name)
            if last is not None and last.failures:
                raise ConnectError(
                    f"Connector {name} failed on worker {last.worker_id or '?'}: {'; '.join(last.failures)} "
                    f"(the worker's log has the whole trace: `tickflow stack logs connect`)."
                )
            if last is not None and last.running and len(last.tasks) == tasks and self._tasks_have(name, config):
                return last
            return None

        def not_running(_: Exception | None) -> Exception:
            states = (
                "not created"
                if last is None
                else f"{last.state}, tasks " + (", ".join(f"{t.id} {t.state}" for t in last.tasks) or "none")
            )
            return ConnectError(
                f"Connector {name} was not running with {tasks} task(s) within {timeout_s:.0f}s ({states}): "
                "read the worker's log (`tickflow stack logs connect`)."
            )

        return wait_for(running, timeout_s, interval_s=poll_s, timed_out=not_running)

    def _tasks_have(self, name: str, config: Mapping[str, str]) -> bool:
        """True when every task was configured from ``config`` (not a previous version still running)."""
        configs = self.task_configs(name)
        keys = [k for k in config if k != "tasks.max"]
        return bool(configs) and all(all(c.get(k) == config[k] for k in keys) for c in configs)
