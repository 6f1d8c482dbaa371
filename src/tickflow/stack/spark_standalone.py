"""The cluster profile's Spark standalone cluster: a master and its workers, each on its own "host".

They run from the pyspark wheel, whose ``sbin/`` has no start scripts: ``bin/spark-class`` runs the master's
and the workers' main classes in the foreground (https://spark.apache.org/docs/latest/spark-standalone.html).
Every daemon binds only its own address (``SPARK_LOCAL_IP`` moves the web UI off 0.0.0.0); executors run
inside the workers' process groups and bind the worker's address; the drivers of tickflow's apps stay on the
edge host. The master's REST submission server (on by default since Spark 4.1) is not needed: it is off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from tickflow.runtime.tooling import java_home, pyspark_home
from tickflow.settings import Settings
from tickflow.stack.jvm import CONSOLE_LOG4J2, JvmService

DAEMON_HEAP = "256m"


class SparkDaemon(JvmService):
    """What the master and a worker share: ``spark-class`` with a conf directory of their own."""

    heap = DAEMON_HEAP

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    def write_config(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "log4j2.properties").write_text(CONSOLE_LOG4J2)

    def environment(self) -> Mapping[str, str]:
        return {
            "SPARK_HOME": str(pyspark_home()),
            "JAVA_HOME": str(java_home(self.java)),
            "SPARK_CONF_DIR": str(self.conf_dir),
            "SPARK_LOCAL_IP": self.host,
            "SPARK_DAEMON_MEMORY": self.heap,
        }

    def spark_class(self, main: str) -> list[str]:
        return [str(pyspark_home() / "bin" / "spark-class"), main]

    def master_state(self) -> dict[str, Any]:
        """The master's ``/json/`` page: its status and its workers."""
        hosts, ports = self.settings.cluster, self.settings.ports
        response = httpx.get(f"http://{hosts.spark_master}:{ports.spark_master_ui}/json/", timeout=5)
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state


class SparkMaster(SparkDaemon):
    name = "spark-master"

    @property
    def host(self) -> str:
        return self.settings.cluster.spark_master

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.spark_master, self.settings.ports.spark_master_ui)

    @property
    def address(self) -> str:
        return self.settings.spark_master

    def environment(self) -> Mapping[str, str]:
        return {**super().environment(), "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}

    def command(self) -> list[str]:
        ports = self.settings.ports
        return [
            *self.spark_class("org.apache.spark.deploy.master.Master"),
            "--host", self.host,
            "--port", str(ports.spark_master),
            "--webui-port", str(ports.spark_master_ui),
        ]  # fmt: skip

    def check_health(self) -> None:
        if self.master_state().get("status") != "ALIVE":
            raise ValueError("the Spark master is not ALIVE")

    def notice(self) -> str | None:
        return f"Spark master UI: http://{self.host}:{self.settings.ports.spark_master_ui}/"


class SparkWorker(SparkDaemon):
    """Worker ``worker`` (1, 2, ...): its cores and memory, its executors' work and scratch directories."""

    depends_on = ("spark-master",)

    def __init__(self, settings: Settings, worker: int) -> None:
        super().__init__(settings)
        self.worker = worker
        self.name = f"spark-worker-{worker}"

    @property
    def group(self) -> str:
        return "spark-worker"

    @property
    def host(self) -> str:
        return self.settings.cluster.spark_workers[self.worker - 1]

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.spark_worker, self.settings.ports.spark_worker_ui)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.settings.ports.spark_worker}"

    def environment(self) -> Mapping[str, str]:
        return {
            **super().environment(),
            # Executors unpack jars and spill here (/tmp by default); finished apps' directories are cleaned.
            "SPARK_LOCAL_DIRS": str(self.home / "local"),
            "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=true",
        }

    def command(self) -> list[str]:
        ports, cluster = self.settings.ports, self.settings.cluster
        return [
            *self.spark_class("org.apache.spark.deploy.worker.Worker"),
            "--host", self.host,
            "--port", str(ports.spark_worker),
            "--webui-port", str(ports.spark_worker_ui),
            "--cores", str(cluster.spark_worker_cores),
            "--memory", cluster.spark_worker_memory,
            "--work-dir", str(self.home / "work"),
            self.settings.spark_master,
        ]  # fmt: skip

    def check_health(self) -> None:
        """Registered with the master and ALIVE there."""
        workers = self.master_state().get("workers", [])
        if not any(w.get("host") == self.host and w.get("state") == "ALIVE" for w in workers):
            raise ValueError(f"the Spark master has no live worker at {self.host}")
