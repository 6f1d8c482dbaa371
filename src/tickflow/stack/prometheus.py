"""Monitoring in the stack: Prometheus scraping every component, and the two exporters it needs beside them.

- ``prometheus`` (Debian's package) on loopback, its samples under ``<state>/prometheus/data`` for
  ``prometheus_retention``; its config is written from the settings and the stack's services, and its rules are
  the checkout's ``monitoring/rules/`` (docs/operations.md lists every metric and alert).
- ``tickflow-exporter``: what no single component reports (consumer-group lag per stage, the stream's figures,
  probes of the services without an endpoint), ``tickflow.monitoring.exporter``.
- ``postgres-exporter`` (Debian's package): PostgreSQL's own figures and the trades source's replication slot.

The apps that run outside the supervisor (the stream, the serving API) announce themselves in
``<state>/prometheus/targets/`` (``tickflow.runtime.scrape``).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from tickflow.runtime.postgres import password_file
from tickflow.runtime.scrape import prune_targets
from tickflow.settings import REPO_ROOT, Settings
from tickflow.stack.base import Service, StackError

RULES = REPO_ROOT / "monitoring" / "rules"


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"{name} is not installed: run `apt-get install --no-install-recommends {package}` (Debian's package; "
            "docs/operations.md says how to keep its system service from starting) and start the stack again."
        )
    return found


def scrape_config(settings: Settings, targets_dir: Path) -> dict[str, Any]:
    """Prometheus's configuration: every component of the stack, and the apps' file-based targets."""
    ports, host = settings.ports, settings.host

    def job(name: str, addresses: Sequence[str], path: str = "/metrics", **extra: Any) -> dict[str, Any]:
        return {"job_name": name, "metrics_path": path, "static_configs": [{"targets": list(addresses)}], **extra}

    def apps(name: str, path: str, app: str | None = None, **extra: Any) -> dict[str, Any]:
        files = [str(targets_dir / f"{app or name}-*.json")]
        return {"job_name": name, "metrics_path": path, "file_sd_configs": [{"files": files}], **extra}

    interval = f"{settings.scrape_interval_s}s"
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": f"{min(settings.scrape_interval_s, 5)}s",
            "evaluation_interval": interval,
        },
        "rule_files": [str(RULES / "*.yml")],
        "scrape_configs": [
            job("prometheus", [f"{host}:{ports.prometheus}"]),
            job("kafka", [f"{broker}:{ports.kafka_metrics}" for broker in settings.kafka_hosts]),
            job("connect", [f"{worker}:{ports.connect_metrics}" for worker in settings.connect_hosts]),
            job("hbase", [f"{host}:{ports.hbase_master_info}"], "/prometheus"),
            job("postgres", [f"{host}:{ports.postgres_exporter}"]),
            job("tickflow-exporter", [f"{host}:{ports.tickflow_exporter}"]),
            apps("serving", "/metrics"),
            # Spark's driver names its series metrics_<namespace>_driver_<source>_...: spark_driver_... here.
            apps(
                "stream",
                "/metrics/prometheus",
                metric_relabel_configs=[
                    {
                        "source_labels": ["__name__"],
                        "regex": "metrics_tickflow_driver_(.+)",
                        "target_label": "__name__",
                        "replacement": "spark_driver_$1",
                    }
                ],
            ),
            apps("stream-executors", "/metrics/executors/prometheus", app="stream"),
        ],
    }


class Prometheus(Service):
    """Prometheus on the edge host: scrapes every component, evaluates tickflow's rules, answers the page."""

    name = "prometheus"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.prometheus,)

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.settings.ports.prometheus}/"

    @property
    def config_path(self) -> Path:
        return self.home / "prometheus.yml"

    def write_config(self) -> bool:
        """Write the config from the settings; True if it changed."""
        targets = self.paths.scrape_targets
        targets.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: Prometheus reads it as it is.
        text = json.dumps(scrape_config(self.settings, targets), indent=2)
        if self.config_path.exists() and self.config_path.read_text() == text:
            return False
        self.config_path.write_text(text)
        return True

    def prepare(self) -> None:
        _binary("prometheus", "prometheus")
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        prune_targets(self.settings)
        self.write_config()

    def command(self) -> list[str]:
        settings = self.settings
        return [
            _binary("prometheus", "prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--storage.tsdb.retention.time={settings.prometheus_retention}",
            f"--storage.tsdb.retention.size={settings.prometheus_retention_size}",
            f"--web.listen-address={self.host}:{settings.ports.prometheus}",
            f"--web.external-url={self.address}",
            "--web.enable-lifecycle",  # POST /-/reload after a config change
            "--log.level=warn",
        ]

    def check_health(self) -> None:
        httpx.get(f"{self.address}-/ready", timeout=5).raise_for_status()

    def bootstrap(self) -> None:
        if self.write_config():
            httpx.post(f"{self.address}-/reload", timeout=10).raise_for_status()

    def notice(self) -> str:
        return f"Prometheus: {self.address} (targets {self.address}targets, alerts {self.address}alerts)"


class TickflowExporter(Service):
    """tickflow's own exporter (``tickflow.monitoring.exporter``): lag per stage, the stream's figures, probes."""

    name = "tickflow-exporter"
    depends_on = ("kafka",)

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.tickflow_exporter,)

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.settings.ports.tickflow_exporter}/metrics"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tickflow.monitoring.exporter"]

    def check_health(self) -> None:
        response = httpx.get(self.address, timeout=5)
        response.raise_for_status()
        if "tickflow_exporter_kafka_up" not in response.text:
            raise StackError("tickflow-exporter answers without its own figures yet")


class PostgresExporter(Service):
    """PostgreSQL's exporter (Debian's package), logged in as the stack's ``tickflow`` role."""

    name = "postgres-exporter"
    depends_on = ("postgres",)

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.postgres_exporter,)

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.settings.ports.postgres_exporter}/metrics"

    def prepare(self) -> None:
        _binary("prometheus-postgres-exporter", "prometheus-postgres-exporter")
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "queries.yaml").write_text(json.dumps(SLOT_QUERIES, indent=2))

    def command(self) -> list[str]:
        return [
            _binary("prometheus-postgres-exporter", "prometheus-postgres-exporter"),
            f"--web.listen-address={self.host}:{self.settings.ports.postgres_exporter}",
            f"--extend.query-path={self.home / 'queries.yaml'}",
            "--log.level=warn",
        ]

    def environment(self) -> Mapping[str, str]:
        ports = self.settings.ports
        return {
            "DATA_SOURCE_URI": f"{self.settings.host}:{ports.postgres}/postgres?sslmode=disable",
            "DATA_SOURCE_USER": "tickflow",
            # the generated password's file (no trailing newline), or the one the settings give
            "DATA_SOURCE_PASS_FILE": str(self._password_file()),
        }

    def _password_file(self) -> Path:
        given = self.settings.postgres_password
        if given is None:
            return password_file(self.settings)
        path = self.home / "password"
        path.touch(mode=0o600)
        path.write_text(given.get_secret_value())
        return path

    def check_health(self) -> None:
        response = httpx.get(self.address, timeout=5)
        response.raise_for_status()
        if "pg_up 1" not in response.text:
            raise StackError("postgres-exporter does not reach PostgreSQL yet")


# How much WAL the trades source's replication slot holds back (the slot is invalidated past
# max_slot_wal_keep_size, and the connector fails).
SLOT_QUERIES = {
    "pg_replication_slot": {
        "query": "SELECT slot_name, active::int AS active, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained_wal_bytes "
        "FROM pg_replication_slots WHERE restart_lsn IS NOT NULL",
        "metrics": [
            {"slot_name": {"usage": "LABEL", "description": "The replication slot."}},
            {"active": {"usage": "GAUGE", "description": "1 while a consumer (Debezium) reads the slot."}},
            {"retained_wal_bytes": {"usage": "GAUGE", "description": "WAL the slot keeps from being recycled."}},
        ],
    }
}
