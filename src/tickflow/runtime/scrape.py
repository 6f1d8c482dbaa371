"""Scrape targets of the apps that run outside the stack's supervisor (the stream, the serving API).

Their ports are chosen when they start, so each writes one file of Prometheus's file-based service discovery
(``<state>/prometheus/targets/<job>-<pid>.json``) and removes it on a clean stop. A process that dies leaves its
file: the target goes down and the ServiceDown alert fires, until the next start of the same app (or of
Prometheus) prunes files whose process is gone (docs/operations.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tickflow.processes import start_ticks
from tickflow.runtime.paths import StatePaths
from tickflow.settings import Settings


def target_file(settings: Settings, job: str, pid: int | None = None) -> Path:
    return StatePaths(settings.root).scrape_targets / f"{job}-{pid or os.getpid()}.json"


def register_target(settings: Settings, job: str, address: str, labels: dict[str, str] | None = None) -> Path:
    """Announce ``address`` (host:port) as this process's target of ``job``; returns the file to remove at stop."""
    prune_targets(settings, job)
    path = target_file(settings, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"targets": [address], "labels": {"service": job, "pid": str(os.getpid()), **(labels or {})}}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps([entry]))
    partial.replace(path)
    return path


def unregister_target(path: Path) -> None:
    path.unlink(missing_ok=True)


def prune_targets(settings: Settings, job: str | None = None) -> list[Path]:
    """Remove target files of processes that are gone (of one job, or all); returns what was removed."""
    directory = StatePaths(settings.root).scrape_targets
    removed = []
    for path in sorted(directory.glob(f"{job or '*'}-*.json")):
        pid = path.stem.rsplit("-", 1)[-1]
        if pid.isdigit() and start_ticks(int(pid)) is None:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
