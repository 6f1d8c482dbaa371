"""What every service of the local stack provides to the supervisor.

A service is one module in this package: it says which artifacts it needs, which
config files it writes, which command starts it and how to tell it is healthy.
The supervisor does the rest (pids, process groups, logs, waiting, the table).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

from tickflow.errors import StackError
from tickflow.runtime.paths import StatePaths
from tickflow.settings import Settings

__all__ = ["Service", "StackError", "StatePaths"]


class Service(ABC):
    """One background process of the local stack."""

    name: str
    depends_on: tuple[str, ...] = ()

    # True for members of a quorum: ``up`` starts every member of the group before it waits for one.
    starts_with_peers = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = StatePaths(settings.root)

    @property
    def host(self) -> str:
        """The address this service binds (its "host"): the edge host, or its own in the cluster profile."""
        return self.settings.host

    @property
    def group(self) -> str:
        """What ``stack up <name>`` and ``depends_on`` may call it together with its peers (``kafka`` for the
        cluster profile's three brokers); its own name when it has none."""
        return self.name

    @property
    def home(self) -> Path:
        return self.paths.home(self.name)

    @property
    def log_path(self) -> Path:
        return self.paths.log(self.name)

    @property
    @abstractmethod
    def ports(self) -> Sequence[int]:
        """Ports this service binds on its :attr:`host`; the first is the one clients use."""

    @property
    @abstractmethod
    def address(self) -> str:
        """What a client connects to, shown in the status table."""

    @abstractmethod
    def prepare(self) -> None:
        """Fetch artifacts and write configs; idempotent and quick when already done."""

    @abstractmethod
    def command(self) -> list[str]:
        """The argv that runs the service in the foreground."""

    def environment(self) -> Mapping[str, str]:
        """Extra environment variables for the process."""
        return {}

    def process_environment(self) -> dict[str, str]:
        """The whole environment the process starts with: the caller's, then :meth:`environment`."""
        return {**os.environ, **self.environment()}

    @abstractmethod
    def check_health(self) -> None:
        """Raise if the service does not answer a real request (a round trip, a 200, a thrift call)."""

    def bootstrap(self) -> None:  # noqa: B027 - optional hook, most services need none
        """Idempotent set-up that needs the running service (databases, users); runs after each up."""

    def shutdown(self) -> bool:
        """Ask the running service to stop cleanly its own way; True if asked (the supervisor then waits
        for it to exit before it signals what is left). By default SIGTERM is the clean stop."""
        return False

    def notice(self) -> str | None:
        """A line for the person after ``stack up`` (a URL and login), if the service has one."""
        return None

    def healthy(self) -> bool:
        try:
            self.check_health()
        except Exception:  # noqa: BLE001 - any failure of the probe means "not healthy yet"
            return False
        return True
