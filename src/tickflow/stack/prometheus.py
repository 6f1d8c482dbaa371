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

from tickflow.runtime.paths import StatePaths
from tickflow.runtime.postgres import password_file
from tickflow.runtime.scrape import METRICS_USER, metrics_login, metrics_password_file, prune_targets
from tickflow.secret_file import write_private
from tickflow.settings import REPO_ROOT, Settings
from tickflow.stack.base import Service, StackError

RULES = REPO_ROOT / "monitoring" / "rules"


def web_config(settings: Settings) -> str:
    """The web config (exporter-toolkit's, read by Prometheus and the postgres exporter) that asks for the metrics
    login: its password as bcrypt."""
    import bcrypt

    login = metrics_login(settings)
    assert login is not None, "a web config is for secured mode"
    user, password = login
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    return json.dumps({"basic_auth_users": {user: hashed}}, indent=2)


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

    # Secured mode: every endpoint asks for the metrics login, the serving API for its token.
    login: dict[str, Any] = {}
    if settings.secured:
        login = {"basic_auth": {"username": METRICS_USER, "password_file": str(metrics_password_file(settings))}}

    def job(name: str, addresses: Sequence[str], path: str = "/metrics", **extra: Any) -> dict[str, Any]:
        targets = [{"targets": list(addresses)}]
        return {"job_name": name, "metrics_path": path, "static_configs": targets, **login, **extra}

    def apps(name: str, path: str, **extra: Any) -> dict[str, Any]:
        files = [str(targets_dir / f"{name}-*.json")]
        return {"job_name": name, "metrics_path": path, "file_sd_configs": [{"files": files}], **extra}

    serving_login: dict[str, Any] = {}
    if settings.secured:
        token = StatePaths(settings.root).serving_token
        serving_login = {"authorization": {"type": "Bearer", "credentials_file": str(token)}}

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
            apps("serving", "/metrics", **serving_login),
            # Spark's driver names its series metrics_<namespace>_driver_<source>_...: spark_driver_... here.
            apps(
                "stream",
                "/metrics/prometheus",
                **login,
                metric_relabel_configs=[
                    {
                        "source_labels": ["__name__"],
                        "regex": "metrics_tickflow_driver_(.+)",
                        "target_label": "__name__",
                        "replacement": "spark_driver_$1",
                    }
                ],
            ),
        ],
    }


def expect_metrics(settings: Settings, address: str, sample: str, otherwise: str) -> None:
    """An exporter's health: its /metrics answers (with the metrics login in secured mode) and holds ``sample``."""
    response = httpx.get(address, auth=metrics_login(settings), timeout=5)
    response.raise_for_status()
    if sample not in response.text:
        raise StackError(f"the exporter at {address} {otherwise} yet")


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

    def write_config(self) -> None:
        targets = self.paths.scrape_targets
        targets.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: Prometheus reads it as it is.
        self.config_path.write_text(json.dumps(scrape_config(self.settings, targets), indent=2))

    @property
    def web_config_path(self) -> Path:
        return self.home / "web.yml"

    def prepare(self) -> None:
        _binary("prometheus", "prometheus")
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        prune_targets(self.settings)
        self.write_config()
        if self.settings.secured:
            write_private(self.web_config_path, web_config(self.settings))

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
            *([f"--web.config.file={self.web_config_path}"] if settings.secured else []),
        ]

    def check_health(self) -> None:
        httpx.get(f"{self.address}-/ready", auth=metrics_login(self.settings), timeout=5).raise_for_status()

    def bootstrap(self) -> None:
        """Config and rules as the checkout has them now, also for a Prometheus that was already running."""
        self.write_config()
        httpx.post(f"{self.address}-/reload", auth=metrics_login(self.settings), timeout=10).raise_for_status()

    def notice(self) -> str:
        where = f"Prometheus: {self.address} (targets {self.address}targets, alerts {self.address}alerts)"
        if self.settings.secured:
            where += f"; login {METRICS_USER}, password in {metrics_password_file(self.settings)}"
        return where


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

    def environment(self) -> Mapping[str, str]:
        # It builds its settings from the environment and runs in its home: the state directory, pinned.
        return {"TICKFLOW_STATE_DIR": str(self.settings.root)}

    def check_health(self) -> None:
        expect_metrics(self.settings, self.address, "tickflow_exporter_kafka_up", "answers without its own figures")


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
        if self.settings.secured:
            write_private(self.home / "web.yml", web_config(self.settings))

    def command(self) -> list[str]:
        return [
            _binary("prometheus-postgres-exporter", "prometheus-postgres-exporter"),
            f"--web.listen-address={self.host}:{self.settings.ports.postgres_exporter}",
            f"--extend.query-path={self.home / 'queries.yaml'}",
            "--log.level=warn",
            *([f"--web.config.file={self.home / 'web.yml'}"] if self.settings.secured else []),
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
        expect_metrics(self.settings, self.address, "pg_up 1", "does not reach PostgreSQL")


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
