"""The local stack: real services as background processes, one module per service.

Adding a service means writing one ``Service`` subclass and listing it in ``SERVICES``.
"""

from __future__ import annotations

from tickflow.settings import Settings
from tickflow.stack.airflow import AirflowApiServer, AirflowDagProcessor, AirflowScheduler, AirflowTriggerer
from tickflow.stack.base import Service, StackError
from tickflow.stack.connect import Connect
from tickflow.stack.hbase import HBase, HBaseThrift
from tickflow.stack.kafka import Kafka
from tickflow.stack.metastore import Metastore, ThriftServer
from tickflow.stack.postgres import Postgres
from tickflow.stack.registry import Registry
from tickflow.stack.supervisor import Supervisor

SERVICES: tuple[type[Service], ...] = (
    Kafka,
    Registry,
    # Before Connect: its HBase sink writes there, so HBase is up first and stops after it.
    HBase,
    HBaseThrift,
    Connect,
    Metastore,
    ThriftServer,
    Postgres,
    AirflowApiServer,
    AirflowScheduler,
    AirflowDagProcessor,
    AirflowTriggerer,
)


def supervisor(settings: Settings) -> Supervisor:
    return Supervisor(settings, [service(settings) for service in SERVICES])


__all__ = ["SERVICES", "Service", "StackError", "Supervisor", "supervisor"]
