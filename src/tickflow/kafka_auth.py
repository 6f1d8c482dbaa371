"""Who a Kafka client is in secured mode, and the client config that says so.

In secured mode (``TICKFLOW_SECURED``) the stack's broker takes only SASL/SCRAM-SHA-512 logins, and each
component logs in as its own principal, whose ACLs allow what that component does and nothing else
(``tickflow.stack.kafka_acls``). Each principal's password is generated at first need into
``<state>/kafka/credentials/<principal>`` (0600) and read from there by every client, so no password has a
default and none is in a config file that is committed. Outside secured mode a client gets the bootstrap
servers alone, as before.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from tickflow.secret_file import generated_secret
from tickflow.settings import Settings

SECURITY_PROTOCOL = "SASL_PLAINTEXT"
SASL_MECHANISM = "SCRAM-SHA-512"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
SCRAM_ITERATIONS = 8192  # of every SCRAM credential: the admin's at format time, the others' at bootstrap
# The backfill's consumer group ids (its offset look-ups, Spark's batch source) start with this; it commits nothing.
BACKFILL_GROUPS = "tickflow-backfill"
# The stream's exactly-once sink: its transactional ids are <this>-<query id>-<partition of the batch>.
TRANSACTIONAL_ID_PREFIX = "tickflow-stream"
# The group id of the health checks' consumers (the stream's lag, Kafka's own check); it commits nothing.
HEALTH_GROUP = "tickflow-health"


class Principal(StrEnum):
    """One Kafka user per component; ``admin`` is the broker's super user (the stack and the admin commands)."""

    ADMIN = "admin"
    SIMULATOR = "simulator"  # the source simulators: write md.events
    STREAM = "stream"  # the enrichment stream: read md.events, write md.enriched and md.dlq
    CONNECT = "connect"  # the Connect worker and its connectors (HBase sink, trades source)
    AIRFLOW = "airflow"  # Airflow's checks: describe and read, never write
    BACKFILL = "backfill"  # the backfill job: read md.events; it writes HBase and Hive, never Kafka
    REGISTRY = "registry"  # the schema registry's own journal (Apicurio KafkaSQL storage)
    MONITOR = "monitor"  # tickflow-exporter: the groups' offsets, a peek at md.* records, md.dlq's reasons


def credentials_dir(settings: Settings) -> Path:
    return settings.root / "kafka" / "credentials"


def credential_file(settings: Settings, principal: Principal) -> Path:
    return credentials_dir(settings) / principal.value


def kafka_password(settings: Settings, principal: Principal) -> str:
    """The principal's password, generated (0600) the first time anything asks for it."""
    return generated_secret(credential_file(settings, principal))


def kafka_client_config(settings: Settings, principal: Principal) -> dict[str, str]:
    """librdkafka (confluent-kafka) config for ``principal``: the bootstrap servers and, in secured mode, the
    SASL login. Callers add their own keys (``group.id``, ``linger.ms``) to a copy."""
    config = {"bootstrap.servers": settings.bootstrap_servers}
    if settings.secured:
        config |= {
            "security.protocol": SECURITY_PROTOCOL,
            "sasl.mechanism": SASL_MECHANISM,
            "sasl.username": principal.value,
            "sasl.password": kafka_password(settings, principal),
        }
    return config


def jaas_config(username: str, password: str, module: str = SCRAM_LOGIN_MODULE) -> str:
    """A ``sasl.jaas.config`` value; the password is quoted, so any secret ``token_urlsafe`` makes fits."""
    return f'{module} required username="{username}" password="{password}";'


def java_client_properties(settings: Settings, principal: Principal) -> dict[str, str]:
    """The same login for a Java client (a Connect worker's properties, a producer or admin client):
    ``bootstrap.servers`` and, in secured mode, ``security.protocol``, ``sasl.mechanism``, ``sasl.jaas.config``."""
    properties = {"bootstrap.servers": settings.bootstrap_servers}
    if settings.secured:
        properties |= {
            "security.protocol": SECURITY_PROTOCOL,
            "sasl.mechanism": SASL_MECHANISM,
            "sasl.jaas.config": jaas_config(principal.value, kafka_password(settings, principal)),
        }
    return properties


def spark_kafka_options(settings: Settings, principal: Principal) -> dict[str, str]:
    """Options of Spark's Kafka source and sink (``kafka.``-prefixed client properties) for ``principal``."""
    return {f"kafka.{key}": value for key, value in java_client_properties(settings, principal).items()}
