"""The local stack: real services as background processes, one module per service.

Adding a service means writing one ``Service`` subclass and listing it in :func:`services`, for the local
profile, the cluster profile or both (``TICKFLOW_PROFILE``, docs/scaling.md).
"""

from __future__ import annotations

from tickflow.settings import Settings
from tickflow.stack.airflow import AirflowApiServer, AirflowDagProcessor, AirflowScheduler, AirflowTriggerer
from tickflow.stack.base import Service, StackError
from tickflow.stack.connect import Connect
from tickflow.stack.hbase import HBase, HBaseThrift
from tickflow.stack.hdfs import DataNode, NameNode
from tickflow.stack.kafka import Kafka
from tickflow.stack.metastore import Metastore, ThriftServer
from tickflow.stack.postgres import Postgres
from tickflow.stack.prometheus import PostgresExporter, Prometheus, TickflowExporter
from tickflow.stack.registry import Registry
from tickflow.stack.spark_standalone import SparkMaster, SparkWorker
from tickflow.stack.supervisor import Supervisor


def services(settings: Settings) -> list[Service]:
    """The stack's services in the order ``up`` starts them (each after what it depends on)."""
    cluster = settings.cluster
    if settings.clustered:
        brokers: list[Service] = [Kafka(settings, n) for n in range(1, len(cluster.kafka) + 1)]
        workers: list[Service] = [Connect(settings, n) for n in range(1, len(cluster.connect) + 1)]
        spark: list[Service] = [NameNode(settings), DataNode(settings), SparkMaster(settings)]
        spark += [SparkWorker(settings, n) for n in range(1, len(cluster.spark_workers) + 1)]
    else:
        brokers, workers, spark = [Kafka(settings)], [Connect(settings)], []
    return [
        *brokers,
        Registry(settings),
        # Before Connect: its HBase sink writes there, so HBase is up first and stops after it.
        HBase(settings),
        HBaseThrift(settings),
        *workers,
        *spark,
        Metastore(settings),
        ThriftServer(settings),
        Postgres(settings),
        AirflowApiServer(settings),
        AirflowScheduler(settings),
        AirflowDagProcessor(settings),
        AirflowTriggerer(settings),
        TickflowExporter(settings),
        PostgresExporter(settings),
        # Last: its first scrapes find every other service up.
        Prometheus(settings),
    ]


def supervisor(settings: Settings) -> Supervisor:
    return Supervisor(settings, services(settings))


__all__ = ["Service", "StackError", "Supervisor", "services", "supervisor"]
