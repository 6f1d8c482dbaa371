"""Airflow 3 in the local stack: api-server, scheduler, dag-processor and triggerer.

Each component is its own service (own process group, own log), all sharing one
``AIRFLOW_HOME`` under ``<state>/airflow`` and one environment built here:

- the metadata database is the stack's PostgreSQL (database ``airflow``), not SQLite:
  the scheduler, the dag-processor, the api-server and the LocalExecutor's workers write
  to it at the same time, and SQLite allows one writer and only the SequentialExecutor;
- the DAGs and plugins are this checkout's ``dags/`` and ``plugins/``;
- Connections come from ``AIRFLOW_CONN_*`` variables derived from the same settings the
  stack uses, so nothing is clicked by hand and a port change reaches Airflow too;
- everything binds loopback, the executor has few workers (2 cores), and the task log
  servers are off (every component reads the same local log folder);
- secrets (Fernet key, JWT and API secrets, the admin password) are generated at first
  start into ``<state>/airflow/secrets.json`` (mode 0600); there is no default password.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from tickflow.kafka_auth import Principal, kafka_client_config
from tickflow.runtime.postgres import postgres_password
from tickflow.settings import REPO_ROOT, Settings
from tickflow.stack.base import Service, StackError, StatePaths

ADMIN_USER = "admin"
VIEWER_USER = "viewer"  # sees DAGs, runs and logs; cannot trigger, clear or pause (the simple auth manager's role)
PARALLELISM = 4
DAG_SCAN_INTERVAL_S = 15


def airflow_home(settings: Settings) -> Path:
    return settings.root / "airflow"


def _airflow_bin() -> Path:
    airflow = Path(sys.executable).parent / "airflow"
    if not airflow.exists():
        raise StackError("Airflow is not installed in this Python: run `make setup` (pip install -r requirements.txt).")
    return airflow


def stack_secrets(settings: Settings) -> dict[str, str]:
    """The generated secrets of the Airflow deployment, created on first use (a secret added in a later
    version is generated into an existing file)."""
    from cryptography.fernet import Fernet

    path = airflow_home(settings) / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted: dict[str, Callable[[], str]] = {
        "fernet_key": lambda: Fernet.generate_key().decode(),
        "jwt_secret": lambda: secrets.token_urlsafe(32),
        "api_secret_key": lambda: secrets.token_urlsafe(32),
        "admin_password": lambda: secrets.token_urlsafe(12),
        "viewer_password": lambda: secrets.token_urlsafe(12),
    }
    if set(wanted) <= set(stored):
        return stored
    generated = {**{name: make() for name, make in wanted.items() if name not in stored}, **stored}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(generated, indent=2))
    partial.chmod(0o600)
    partial.replace(path)
    return generated


def write_passwords(settings: Settings) -> Path:
    """The simple auth manager's passwords file (0600), from the stack's secrets (generated at the first start)."""
    generated = stack_secrets(settings)
    path = airflow_home(settings) / "passwords.json"
    path.write_text(json.dumps({user: generated[f"{user}_password"] for user in (ADMIN_USER, VIEWER_USER)}))
    path.chmod(0o600)
    return path


def admin_password(settings: Settings) -> str:
    return password(settings, ADMIN_USER)


def password(settings: Settings, user: str) -> str:
    """The generated password of a login (``ADMIN_USER`` or ``VIEWER_USER``)."""
    if not (airflow_home(settings) / "secrets.json").exists():
        raise StackError("Airflow has no logins yet: start the stack with `tickflow stack up`.")
    return stack_secrets(settings)[f"{user}_password"]


def connections(settings: Settings) -> dict[str, dict[str, Any]]:
    """Airflow Connections for the stack's services, keyed by connection id."""
    host, ports = settings.host, settings.ports
    return {
        "kafka_default": {
            "conn_type": "kafka",
            # The Kafka provider's hooks hand the extra to confluent-kafka as it is: the login goes with it.
            "extra": {**kafka_client_config(settings, Principal.AIRFLOW), "group.id": "tickflow-airflow"},
        },
        "schema_registry": {
            "conn_type": "http",
            "host": host,
            "port": ports.registry,
            "schema": "http",
            "extra": {"endpoint": "/apis/ccompat/v7", "url": settings.registry_url},
        },
        "spark_default": {
            "conn_type": "spark",
            "host": settings.spark_master,
            "extra": {"spark-binary": "spark-submit"},
        },
        "metastore_default": {"conn_type": "hive_metastore", "host": host, "port": ports.metastore},
        "hiveserver2_default": {
            "conn_type": "hiveserver2",
            "host": host,
            "port": ports.thriftserver,
            "schema": "default",
            "login": "tickflow",
            "extra": {"auth_mechanism": "NONE"},
        },
    }


def airflow_environment(settings: Settings) -> dict[str, str]:
    """The environment every Airflow component (and every task it runs) gets."""
    home = airflow_home(settings)
    keys = stack_secrets(settings)
    # psycopg 3 (already the security master's driver) serves both of Airflow's engines.
    database = f"tickflow:{postgres_password(settings)}@{settings.host}:{settings.ports.postgres}/airflow"
    env = {
        "AIRFLOW_HOME": str(home),
        # Tasks build tickflow's Settings from the environment: pin the state dir, not the worker's cwd.
        "TICKFLOW_STATE_DIR": str(settings.root),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SPARK_LOCAL_IP": settings.host,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(PARALLELISM),
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin,{VIEWER_USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://{database}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"postgresql+psycopg_async://{database}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "3",
        "AIRFLOW__API__HOST": settings.host,
        "AIRFLOW__API__PORT": str(settings.ports.airflow),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": settings.airflow_url,
        "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(DAG_SCAN_INTERVAL_S),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(DAG_SCAN_INTERVAL_S),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # A task whose process died (its worker or the scheduler was killed) is failed or reset and retried
        # within a minute instead of five; running tasks heartbeat every few seconds, so none is cut short.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(StatePaths(settings.root).logs / "airflow-tasks"),
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
    }
    for conn_id, connection in connections(settings).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
    return env


def api_health(settings: Settings) -> dict[str, Any]:
    """The api-server's monitor endpoint: metadatabase, scheduler, triggerer and dag-processor status."""
    import httpx

    response = httpx.get(f"{settings.airflow_url}/api/v2/monitor/health", timeout=5)
    response.raise_for_status()
    health: dict[str, Any] = response.json()
    return health


class AirflowComponent(Service):
    """One Airflow component started with ``airflow <subcommand>``."""

    subcommand: tuple[str, ...]
    health_key: str

    @property
    def ports(self) -> Sequence[int]:
        return ()

    @property
    def address(self) -> str:
        return "-"

    @property
    def home(self) -> Path:
        return airflow_home(self.settings)

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [str(_airflow_bin()), *self.subcommand]

    @cached_property
    def _environment(self) -> dict[str, str]:
        return airflow_environment(self.settings)

    def environment(self) -> Mapping[str, str]:
        return self._environment

    def process_environment(self) -> dict[str, str]:
        """The caller's environment without its Airflow configuration: the stack's Airflow is configured by
        :func:`airflow_environment` alone. (A test session's ``AIRFLOW__CORE__UNIT_TEST_MODE`` once leaked in
        and made every DAG start unpaused.)"""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        return {**inherited, **self.environment()}

    def check_health(self) -> None:
        status = api_health(self.settings).get(self.health_key, {}).get("status")
        if status != "healthy":
            raise StackError(f"{self.name}: Airflow reports {self.health_key} as {status}.")


class AirflowApiServer(AirflowComponent):
    """The UI and REST API; also serves the execution API that task processes talk to."""

    name = "airflow"
    depends_on = ("postgres",)
    subcommand = ("api-server",)
    health_key = "metadatabase"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.airflow,)

    @property
    def address(self) -> str:
        return self.settings.airflow_url

    def prepare(self) -> None:
        super().prepare()
        write_passwords(self.settings)
        with self.log_path.open("a") as log:
            log.write("\n==== tickflow: airflow db migrate ====\n")
            log.flush()
            result = subprocess.run(
                [str(_airflow_bin()), "db", "migrate"],
                cwd=self.home,
                env=self.process_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            raise StackError(
                f"airflow: migrating the metadata database failed (exit {result.returncode}): read {self.log_path}."
            )

    def notice(self) -> str | None:
        return (
            f"Airflow UI {self.settings.airflow_url}  login {ADMIN_USER} / {admin_password(self.settings)}  "
            f"(read-only: {VIEWER_USER} / {password(self.settings, VIEWER_USER)})"
        )


class AirflowScheduler(AirflowComponent):
    name = "airflow-scheduler"
    depends_on = ("airflow",)
    subcommand = ("scheduler", "--skip-serve-logs")
    health_key = "scheduler"

    @property
    def address(self) -> str:
        return f"LocalExecutor, {PARALLELISM} slots"


class AirflowDagProcessor(AirflowComponent):
    name = "airflow-dag-processor"
    depends_on = ("airflow",)
    subcommand = ("dag-processor",)
    health_key = "dag_processor"


class AirflowTriggerer(AirflowComponent):
    name = "airflow-triggerer"
    depends_on = ("airflow",)
    subcommand = ("triggerer", "--skip-serve-logs", "--capacity", "100")
    health_key = "triggerer"
