"""Load the Avro schemas in ``schemas/`` and register them with the schema registry.

Schemas are files (one record per ``.avsc``, named after its full name). This module
parses them once with fastavro and knows which registry subject each one lives under:
``<topic>-value`` for topic values (Confluent's TopicNameStrategy), the record's full
name for reference records that are not tied to a topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

from tickflow.errors import TickflowError
from tickflow.settings import Settings
from tickflow.topics import TOPICS

# Which schema each topic's values use. The stream and the sinks read this too.
TOPIC_SCHEMAS = {topic.name: topic.schema for topic in TOPICS if topic.schema is not None}
# Records that are not the value of a topic, registered under their full name.
RECORD_SCHEMAS = ("tickflow.ref.Instrument", "tickflow.ref.FxRate")


class SchemaError(TickflowError, ValueError):
    """A schema file is missing or is not valid Avro."""


@dataclass(frozen=True)
class AvroSchema:
    """One schema: its text as registered, and fastavro's parsed form for the hot path."""

    full_name: str
    text: str
    definition: dict[str, Any]
    parsed: Any

    @property
    def fields(self) -> list[str]:
        return [f["name"] for f in self.definition["fields"]]


@cache
def _load(path: Path) -> AvroSchema:
    try:
        definition = json.loads(path.read_text())
        parsed = fastavro.parse_schema(definition)
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as error:
        raise SchemaError(f"{path} is not a valid Avro schema ({error}): fix the file.") from error
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise SchemaError(f"{path} must hold one Avro record schema.")
    name = str(parsed["name"])
    if path.stem != name:
        raise SchemaError(f"{path} holds {name}: name the file {name}.avsc.")
    return AvroSchema(name, json.dumps(definition, separators=(",", ":")), definition, parsed)


def load(full_name: str, directory: Path) -> AvroSchema:
    if not directory.is_dir():
        raise SchemaError(f"There is no schema directory {directory}: point TICKFLOW_SCHEMAS_DIR at the .avsc files.")
    path = directory / f"{full_name}.avsc"
    if not path.exists():
        raise SchemaError(f"There is no schema file {path}: add {full_name}.avsc to {directory}.")
    return _load(path)


def subjects(directory: Path) -> dict[str, AvroSchema]:
    """Every registry subject tickflow owns, with the schema registered under it."""
    table = {f"{topic}-value": load(name, directory) for topic, name in TOPIC_SCHEMAS.items()}
    table.update({name: load(name, directory) for name in RECORD_SCHEMAS})
    return table


@dataclass(frozen=True)
class Registration:
    subject: str
    schema_id: int
    version: int


def register(
    settings: Settings, subject: str, schema: AvroSchema, compatibility: str | None = "BACKWARD"
) -> Registration:
    """Register ``schema`` under ``subject`` (idempotent: the same schema keeps its id) and set the subject's
    compatibility; the registry's refusal is said in one sentence."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = SchemaRegistryClient(settings.registry_client_config)
    try:
        schema_id = client.register_schema(subject, Schema(schema.text, "AVRO"))
        if compatibility:
            client.set_compatibility(subject, compatibility)
        version = client.lookup_schema(subject, Schema(schema.text, "AVRO")).version
    except SchemaRegistryError as error:
        if error.http_status_code == 409:
            raise TickflowError(
                f"The schema registry refused {schema.full_name} under {subject}: it is not {compatibility or 'the'} "
                f"compatible with the versions registered there ({error.error_message}); add a new field with a "
                f"default and keep the existing ones, in {settings.schemas_dir / schema.full_name}.avsc."
            ) from error
        raise TickflowError(
            f"The schema registry at {settings.registry_url} refused {subject} (HTTP {error.http_status_code}: "
            f"{error.error_message}): fix {settings.schemas_dir / schema.full_name}.avsc, or read "
            "`tickflow stack logs registry`."
        ) from error
    return Registration(subject, int(schema_id), int(version or 0))


def register_all(settings: Settings) -> list[Registration]:
    """Register each schema under its subject with BACKWARD compatibility (idempotent)."""
    return [register(settings, subject, schema) for subject, schema in subjects(settings.schemas_dir).items()]
