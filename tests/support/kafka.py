"""The tests' own Kafka clients: they set up and inspect what the platform does, so they log in as ``admin``
(the broker's super user) when the stack runs in secured mode, and connect as before when it does not."""

from __future__ import annotations

from tickflow.kafka_auth import Principal, kafka_client_config
from tickflow.settings import Settings


def as_admin(settings: Settings) -> dict[str, str]:
    """confluent-kafka config for a test's producer, consumer or admin client; add its own keys to a copy."""
    return kafka_client_config(settings, Principal.ADMIN)
