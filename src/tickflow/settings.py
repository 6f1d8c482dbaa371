"""One frozen settings object for every tickflow process.

Values come from the environment (prefix ``TICKFLOW_``) or a ``.env`` file, so a
DAG, a Spark app and the stack command all read the same addresses. This module
must not import pyspark: Airflow parses DAGs with it on the path.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

LOOPBACK = "127.0.0.1"
# The checkout this package is installed from (editable install): schemas/, hive_ddl/, spark_apps/.
REPO_ROOT = Path(__file__).resolve().parents[2]
# What goes between "//" and ":<port>" in the addresses built from it: a name or an IPv4 address.
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

Port = Annotated[int, Field(ge=1, le=65535)]


class StackPorts(BaseSettings):
    """Where each local service listens (all on loopback)."""

    model_config = SettingsConfigDict(env_prefix="TICKFLOW_PORT_", frozen=True)

    kafka: Port = 9092
    kafka_controller: Port = 9093
    registry: Port = 8081
    registry_management: Port = 9000
    connect: Port = 8083
    metastore: Port = 9083
    thriftserver: Port = 10000
    postgres: Port = 5432
    spark_ui: Annotated[int, Field(ge=1024, le=65535)] = 4040  # Spark binds no port below 1024
    airflow: Port = 8080
    hbase_zookeeper: Port = 2181
    hbase_master: Port = 16000
    hbase_regionserver: Port = 16020
    hbase_thrift: Port = 9090
    serving: Port = 8000  # `tickflow serve`: the serving API and its web page
    # Monitoring (docs/operations.md): Prometheus (9090 is HBase Thrift's), the metrics endpoints it scrapes.
    prometheus: Port = 9091
    kafka_metrics: Port = 9404  # each broker's JMX exporter agent, on the broker's host
    connect_metrics: Port = 9405  # each Connect worker's JMX exporter agent, on the worker's host
    hbase_master_info: Port = 16010  # HBase's info server: its /prometheus
    tickflow_exporter: Port = 9410  # consumer-group lag, the stream's figures, probes
    postgres_exporter: Port = 9187
    # The cluster profile's own services (each on the address its "host" has, see ClusterHosts).
    spark_master: Port = 7077
    spark_master_ui: Annotated[int, Field(ge=1024, le=65535)] = 8080
    spark_worker: Port = 7078
    spark_worker_ui: Annotated[int, Field(ge=1024, le=65535)] = 8081
    hdfs_namenode: Port = 8020
    hdfs_namenode_http: Port = 9870
    hdfs_datanode: Port = 9866
    hdfs_datanode_ipc: Port = 9867
    hdfs_datanode_http: Port = 9864


class ClusterHosts(BaseSettings):
    """The cluster profile's "hosts": one loopback address each, so that nothing can quietly assume one
    machine (docs/scaling.md). The edge host (``TICKFLOW_HOST``) keeps the registry, the metastore, HBase,
    PostgreSQL, Airflow, the serving API and every Spark driver."""

    model_config = SettingsConfigDict(env_prefix="TICKFLOW_CLUSTER_", frozen=True)

    kafka: tuple[str, ...] = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    connect: tuple[str, ...] = ("127.0.0.3", "127.0.0.4")
    spark_master: str = "127.0.0.2"
    spark_workers: tuple[str, ...] = ("127.0.0.3", "127.0.0.4")
    spark_worker_cores: int = Field(
        default=2,
        ge=1,
        description="Cores each Spark worker offers its executors: two each, so that beside the stream (two "
        "executors of one core) a backfill or a reference refresh gets executors too.",
    )
    spark_worker_memory: str = Field(default="2g", description="Memory each Spark worker offers its executors.")
    namenode: str = "127.0.0.2"
    datanode: str = "127.0.0.3"


class Settings(BaseSettings):
    """Addresses, versions and locations shared by the stack, the apps and the tests."""

    model_config = SettingsConfigDict(env_prefix="TICKFLOW_", env_file=".env", extra="ignore", frozen=True)

    state_dir: Path = Field(
        default=Path(".tickflow"),
        description="Where the local stack keeps configs, data, logs and pids.",
    )
    schemas_dir: Path = Field(
        default=REPO_ROOT / "schemas", description="The .avsc files (the checkout's schemas/ by default)."
    )
    hive_ddl_dir: Path = Field(
        default=REPO_ROOT / "hive_ddl", description="Versioned HQL migrations (the checkout's hive_ddl/)."
    )
    connectors_dir: Path = Field(
        default=REPO_ROOT / "connectors",
        description="Maven projects of the Kafka Connect plugins the stack builds and installs (the checkout's "
        "connectors/).",
    )
    host: str = LOOPBACK
    ports: StackPorts = Field(default_factory=StackPorts)
    profile: Literal["local", "cluster"] = Field(
        default="local",
        description="local: one process per service on one address, Spark in local mode (the default, and the "
        "lightest). cluster: Spark standalone (a master and two workers), three Kafka brokers (replication "
        "factor 3, min.insync.replicas 2), HDFS for the stream's checkpoint and state, two Connect workers, each "
        "on its own loopback address (TICKFLOW_CLUSTER_*; docs/scaling.md).",
    )
    cluster: ClusterHosts = Field(default_factory=ClusterHosts)
    secured: bool = Field(
        default=False,
        description="Secured mode, the one switch for access control: the serving API and its page ask for a "
        "token, and the stack's Kafka takes SASL/SCRAM logins only, one user per component, each allowed what "
        "its ACLs say (tickflow.kafka_auth). Off for the local demo.",
    )

    kafka_version: str = "4.1.1"
    log4j_version: str = "2.24.3"
    apicurio_version: str = "3.3.3"
    debezium_version: str = Field(
        default="3.6.1.Final",
        description="Debezium's PostgreSQL connector in the Connect worker (built against Kafka 4.3; its "
        "bytecode uses only API the 4.1 worker has).",
    )
    hbase_version: str = Field(
        default="2.6.1",
        description="hbase-thrift and the compression modules exist on Maven Central only in this version's "
        "Hadoop 2 build; the server runs its -hadoop3 build.",
    )
    hbase_history_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        le=2**31 - 1,
        description="How long md:history keeps a cell (HBase TTL, by cell timestamp).",
    )
    hbase_history_compression: Literal["ZSTD", "LZ4", "SNAPPY", "GZ", "NONE"] = Field(
        default="LZ4",
        description="Codec of md:history: LZ4, SNAPPY, ZSTD (pure Java), GZ or NONE. LZ4 by default: pure-Java ZSTD "
        "was about half of HBase's CPU at load (flushes and compactions; docs/performance.md).",
    )
    hadoop_version: str = Field(
        default="3.5.0",
        description="The cluster profile's HDFS daemons: the Hadoop client version of the installed pyspark.",
    )
    spark_connector_version: str = Field(
        default="4.2.0",
        description="Must equal the installed pyspark version: the connectors are built per release.",
    )

    java_home: Path | None = Field(default=None, description="JDK 17+ for Kafka, Connect, Spark and the metastore.")
    java21_home: Path | None = Field(default=None, description="JDK 21+ for the schema registry (Apicurio 3.x).")
    postgres_password: SecretStr | None = Field(
        default=None,
        description="Password of the tickflow role; by default the one the stack generated at first start.",
    )
    health_timeout_s: float = Field(default=180.0, gt=0)
    registry_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one request to the schema registry.")
    spark_master: str = Field(
        default="local[2]",
        description="Spark master of tickflow's applications (stream, backfill, reference refresh); in the "
        "cluster profile the standalone master (spark://<master>:7077) unless set.",
    )
    spark_java_options: str = Field(
        default="-XX:TieredStopAtLevel=1",
        description="JVM options of the Spark drivers of short-lived applications (reference refresh, snapshots, "
        "one-off sessions): C1-only compilation starts them ~40% sooner on two cores, and their small jobs never "
        "profit from C2. The stream app has its own (TICKFLOW_STREAM_JAVA_OPTIONS).",
    )
    prometheus_retention: str = Field(
        default="7d", description="How long Prometheus keeps samples (its --storage.tsdb.retention.time)."
    )
    prometheus_retention_size: str = Field(
        default="1GB", description="The most disk Prometheus's samples may take (--storage.tsdb.retention.size)."
    )
    scrape_interval_s: int = Field(
        default=15,
        ge=1,
        le=300,
        description="How often Prometheus scrapes every target and evaluates the rules: every scrape costs each "
        "component some CPU the pipeline shares (docs/operations.md).",
    )
    jmx_exporter_version: str = Field(
        default="1.0.1",
        description="The JMX exporter javaagent in Kafka's and Connect's JVMs: the last release on Maven Central.",
    )
    app_stop_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="How long a stopping app (the stream) may finish its micro-batch before SIGKILL.",
    )

    @field_validator("host")
    @classmethod
    def _bare_host(cls, host: str) -> str:
        if not HOST.fullmatch(host):
            raise ValueError("give a host name or an IPv4 address alone, without scheme, port or path")
        return host

    @model_validator(mode="before")
    @classmethod
    def _cluster_master(cls, data: object) -> object:
        """The cluster profile's apps run on its standalone master unless TICKFLOW_SPARK_MASTER says otherwise."""
        if isinstance(data, dict) and data.get("profile") == "cluster" and "spark_master" not in data:
            hosts = ClusterHosts(**data.get("cluster", {}))
            ports = StackPorts(**data.get("ports", {}))
            data = {**data, "spark_master": f"spark://{hosts.spark_master}:{ports.spark_master}"}
        return data

    @field_validator("state_dir")
    @classmethod
    def _directory(cls, state_dir: Path) -> Path:
        if state_dir.expanduser().exists() and not state_dir.expanduser().is_dir():
            raise ValueError("a file, not a directory")
        return state_dir

    @cached_property
    def root(self) -> Path:
        """The state directory as an absolute path."""
        return self.state_dir.expanduser().resolve()

    @property
    def clustered(self) -> bool:
        return self.profile == "cluster"

    @property
    def kafka_hosts(self) -> tuple[str, ...]:
        """One address per broker: the edge host alone, or the cluster profile's brokers."""
        return self.cluster.kafka if self.clustered else (self.host,)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{host}:{self.ports.kafka}" for host in self.kafka_hosts)

    @property
    def kafka_replication(self) -> int:
        """Replication factor of every topic: each partition on three brokers where there are three."""
        return min(3, len(self.kafka_hosts))

    @property
    def kafka_min_insync(self) -> int:
        """Replicas that must have a write before ``acks=all`` succeeds: one broker may die with no write lost."""
        return max(1, self.kafka_replication - 1)

    @property
    def registry_url(self) -> str:
        """The Confluent-compatible REST API that confluent-kafka's client speaks."""
        return f"http://{self.host}:{self.ports.registry}/apis/ccompat/v7"

    @property
    def registry_client_config(self) -> dict[str, object]:
        """confluent-kafka's SchemaRegistryClient config: the URL and a timeout. Without one a request the
        registry never answers blocks forever; with one the client retries it."""
        return {"url": self.registry_url, "timeout": self.registry_timeout_s}

    @property
    def connect_hosts(self) -> tuple[str, ...]:
        return self.cluster.connect if self.clustered else (self.host,)

    @property
    def connect_urls(self) -> tuple[str, ...]:
        """The REST API of every Connect worker; any of them answers for the whole group (followers forward to
        the leader), so a client asks the next when one does not answer (``sinks.connect.ConnectClient``)."""
        return tuple(f"http://{host}:{self.ports.connect}" for host in self.connect_hosts)

    @property
    def connect_url(self) -> str:
        return self.connect_urls[0]

    @property
    def hdfs_uri(self) -> str | None:
        """The cluster profile's HDFS (None in the local profile, where state stays on the local disk)."""
        return f"hdfs://{self.cluster.namenode}:{self.ports.hdfs_namenode}" if self.clustered else None

    @property
    def metastore_uri(self) -> str:
        return f"thrift://{self.host}:{self.ports.metastore}"

    @property
    def hbase_thrift_address(self) -> tuple[str, int]:
        """Where HBase's Thrift (1) server listens: what happybase connects to."""
        return self.host, self.ports.hbase_thrift

    @property
    def landing_dir(self) -> Path:
        """Where file-based source systems drop their files (FX vendor feed, universe seed)."""
        return self.root / "landing"

    @property
    def postgres_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.ports.postgres}/secmaster"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.ports.airflow}"

    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"


def explain_invalid(error: ValidationError | SettingsError) -> str | None:
    """One sentence for settings that did not load: each ``TICKFLOW_*`` variable at fault, its value, what is
    wrong with it and what to do; None when the error is not about a settings class (a bug, not input).

    pydantic names the model of a ValidationError only by its title (the class name), and a SettingsError
    (a complex value that is not JSON) names only the field, so the class is looked up among the settings
    classes defined so far: the one that failed is among them."""
    classes = _settings_classes()
    if isinstance(error, SettingsError):
        field = re.search(r'field "(\w+)"', str(error))
        owners = [cls for cls in classes.values() if field and field[1] in cls.model_fields]
        if len(owners) != 1 or field is None:
            return None
        reason = str(error.__cause__ or error)
        return f"{_variable(owners[0], field[1])} is not valid JSON ({reason}): fix it, or unset it."
    model = classes.get(error.title)
    if model is None:
        return None
    problems = []
    for detail in error.errors(include_url=False):
        field_name = str(detail["loc"][0]) if detail["loc"] else ""
        info = model.model_fields.get(field_name)
        if info is None:
            return None
        name = _variable(model, field_name)
        secret = "SecretStr" in str(info.annotation)
        value = "" if secret or detail["type"] == "missing" else f"={detail['input']!r}"
        if len(detail["loc"]) > 1:  # a key of a JSON value, e.g. TICKFLOW_PORTS='{"kafka": "x"}'
            name, value = ".".join(str(part) for part in detail["loc"][1:]) + value, f" in {name}"
        reason = detail["msg"].removeprefix("Value error, ")
        default = "" if info.default in (PydanticUndefined, None) else f" {info.default}"
        problems.append((f"{name}{value} is not valid ({reason[:1].lower()}{reason[1:]})", default))
    if len(problems) == 1:
        ((problem, default),) = problems
        return f"{problem}: fix it, or unset it for the default{default}."
    return "; ".join(problem for problem, _ in problems) + ": fix them, or unset them for their defaults."


def _variable(model: type[BaseSettings], field: str) -> str:
    return f"{model.model_config.get('env_prefix', '')}{field}".upper()


def _settings_classes() -> dict[str, type[BaseSettings]]:
    found: dict[str, type[BaseSettings]] = {}
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        for cls in pending.pop().__subclasses__():
            found.setdefault(cls.__name__, cls)
            pending.append(cls)
    return found
