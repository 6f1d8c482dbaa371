"""Scrape targets of the apps that run outside the stack's supervisor (the stream, the serving API), and the one
login of every metrics endpoint in secured mode.

Their ports are chosen when they start, so each writes one file of Prometheus's file-based service discovery
(``<state>/prometheus/targets/<job>-<pid>.json``) and removes it on a clean stop. A process that dies leaves its
file: the target goes down and the ServiceDown alert fires, until the next start of the same app (or of
Prometheus) prunes files whose process is gone (docs/operations.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tickflow.runtime.paths import StatePaths
from tickflow.secret_file import generated_secret
from tickflow.settings import Settings

# In secured mode every metrics endpoint, and Prometheus itself, takes this one login (docs/operations.md).
METRICS_USER = "prometheus"


def metrics_password_file(settings: Settings) -> Path:
    return StatePaths(settings.root).home("prometheus") / "credentials" / METRICS_USER


def metrics_login(settings: Settings) -> tuple[str, str] | None:
    """The metrics login in secured mode (the password generated, 0600, at first need); None in plain mode."""
    if not settings.secured:
        return None
    return METRICS_USER, generated_secret(metrics_password_file(settings))


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
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True
