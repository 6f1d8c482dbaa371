"""Where tickflow keeps its state: the layout of the state directory (default ``.tickflow/``).

The local stack keeps its services' homes, logs and pid files here; the apps (the stream, the sink's
workers, the reference refresh) keep their logs here too and find the jars the stack fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StatePaths:
    """The layout of the state directory (default ``.tickflow/``)."""

    root: Path

    @property
    def lib(self) -> Path:
        return self.root / "lib"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def home(self, service: str) -> Path:
        """Config and data of one service."""
        return self.root / service

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def pidfile(self, service: str) -> Path:
        return self.run / f"{service}.json"

    @property
    def serving_token(self) -> Path:
        """The serving API's generated token (secured mode), which Prometheus also sends to its /metrics."""
        return self.home("serving") / "token"

    @property
    def scrape_targets(self) -> Path:
        """Prometheus's file-based targets: one JSON file per running app whose port the stack does not fix."""
        return self.home("prometheus") / "targets"

    @property
    def hbase_root(self) -> Path:
        """``hbase.rootdir`` of the local standalone HBase: a table's store files are under
        ``data/<namespace>/<table>/<region>/<family>/`` (what the maintenance DAG counts around a compaction)."""
        return self.home("hbase") / "data"
