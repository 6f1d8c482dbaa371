"""Decoding the Confluent wire format and validating market events (DESIGN §6).

Every message either decodes into the latest reader schema of ``MarketEvent`` (records
of any registered version resolve into it, Avro schema resolution) and passes
validation, or it is rejected with a reason that goes to the dead-letter topic along
with the original bytes. Nothing here raises on bad input.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

import fastavro
import numpy as np
import pandas as pd
from fastavro.schema import to_parsing_canonical_form

from tickflow.avro_codec import to_micros
from tickflow.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

MAGIC = 0


@dataclass(frozen=True)
class Limits:
    """Validation settings: how far in the future an event may be, how crossed a quote."""

    max_future_us: int = 60_000_000
    crossed_tolerance: float = 0.0  # bid may exceed ask by this fraction of ask


class Rejected(ValueError):
    """A message that cannot become an event; ``str`` is the reason recorded in the DLQ."""


class Decoder:
    """Confluent-framed Avro -> dict in the reader schema; writer schemas fetched once per id."""

    def __init__(self, reader_schema: dict[str, Any], fetch_writer: Callable[[int], str | None]) -> None:
        self.reader = fastavro.parse_schema(reader_schema)
        self.reader_form = to_parsing_canonical_form(self.reader)
        self.fetch_writer = fetch_writer
        self.writers: dict[int, tuple[Any, Any] | None] = {}

    def writer(self, schema_id: int) -> tuple[Any, Any] | None:
        """(writer schema, reader schema or None when no resolution is needed), None if unknown."""
        if schema_id not in self.writers:
            text = self.fetch_writer(schema_id)
            if text is None:
                self.writers[schema_id] = None
            else:
                writer = fastavro.parse_schema(json.loads(text))
                # Same schema as the reader: skip Avro schema resolution, about twice as fast.
                same = to_parsing_canonical_form(writer) == self.reader_form
                self.writers[schema_id] = (writer, None if same else self.reader)
        return self.writers[schema_id]

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value or len(value) < 6 or value[0] != MAGIC:
            raise Rejected("not in the Confluent wire format (no magic byte 0 and schema id)")
        schema_id = int.from_bytes(value[1:5], "big")
        schemas = self.writer(schema_id)
        if schemas is None:
            raise Rejected(f"unknown schema id {schema_id}")
        body = io.BytesIO(value)
        body.seek(5)
        try:
            record = fastavro.schemaless_reader(body, *schemas)
        except Exception as error:  # noqa: BLE001 - fastavro raises many kinds on bad bytes
            raise Rejected(f"undecodable Avro body for schema id {schema_id}: {type(error).__name__}") from None
        if body.tell() != len(value):
            raise Rejected(f"{len(value) - body.tell()} bytes left over after the record (schema id {schema_id})")
        if not isinstance(record, dict):
            raise Rejected(f"schema id {schema_id} is not a record schema")
        return record


def registry_fetcher(registry_url: str) -> Callable[[int], str | None]:
    """Look a schema id up in the registry; None when the registry does not know it."""

    def fetch(schema_id: int) -> str | None:
        import httpx

        response = httpx.get(f"{registry_url}/schemas/ids/{schema_id}", timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        schema: str = response.json()["schema"]
        return schema

    return fetch


PRICES = ("bid_price", "ask_price", "last_price", "close_price", "reference_price", "trade_price")
SIZES = ("bid_size", "ask_size", "trade_size")


def reject_reasons(events: pd.DataFrame, now_us: int, limits: Limits) -> np.ndarray:
    """Per event, why the platform must not fill it (None when valid), the first failing rule first.

    ``events`` has the MarketEvent fields with ``event_time`` in µs and ``kafka_key``, the message
    key. Vectorised: rules are checked on whole columns; only a failing row's reason is formatted.
    """
    rows = len(events)

    def column(name: str) -> np.ndarray:
        return events[name].to_numpy() if name in events else np.full(rows, None)

    def blank(name: str) -> np.ndarray:
        values = pd.Series(column(name), dtype=object)
        missing: np.ndarray = values.isna().to_numpy()
        missing[~missing] = values[~missing].astype(str).str.strip().eq("").to_numpy()
        return missing

    rules: list[tuple[np.ndarray, Callable[[int], str]]] = []

    def rule(failing: np.ndarray, template: str, *args: np.ndarray) -> None:
        rules.append((failing, lambda i: template.format(*(a[i] for a in args))))

    instrument, key, event_time = column("instrument_id"), column("kafka_key"), column("event_time").astype(np.int64)
    rule(blank("instrument_id"), "missing instrument_id")
    rule(blank("event_id"), "missing event_id")
    shown_key = np.array([k or None for k in key], dtype=object)
    rule(key != instrument, "message key {!r} is not the instrument_id {!r}", shown_key, instrument)
    rule(event_time > now_us + limits.max_future_us, "event_time {:.0f}s in the future", (event_time - now_us) / 1e6)
    with np.errstate(invalid="ignore"):
        for name in PRICES:  # a set price must be > 0, which also catches NaN
            values = column(name)
            rule(~pd.isna(values) & ~(values.astype(float) > 0), f"{name} {{}} is not positive", values)
        for name in SIZES:
            values = column(name)
            rule(values.astype(float) < 0, f"{name} {{}} is negative", values)
        bid, ask = column("bid_price").astype(float), column("ask_price").astype(float)
        tolerance = f"{limits.crossed_tolerance:.2%}"
        rule(
            bid > ask * (1 + limits.crossed_tolerance),
            f"bid {{}} above ask {{}} beyond the {tolerance} tolerance",
            bid,
            ask,
        )
    reasons = np.full(rows, None, dtype=object)
    for failing, reason in rules:
        for i in np.flatnonzero(failing & (reasons == None)):  # noqa: E711 - elementwise on an object array
            reasons[i] = reason(int(i))
    return reasons


def validate(record: dict[str, Any], key: str | None, now_us: int, limits: Limits) -> None:
    """Raise :class:`Rejected` for an event the platform must not fill (:func:`reject_reasons` of one)."""
    event = {**record, "event_time": to_micros(record["event_time"]), "kafka_key": key or ""}
    reason = reject_reasons(pd.DataFrame([event]), now_us, limits)[0]
    if reason is not None:
        raise Rejected(reason)


def registered_writers(settings: Settings, subject: str) -> dict[int, str]:
    """Every schema registered under ``subject``, by id (empty when the subject does not exist yet)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = _registry_clients.setdefault(settings.registry_url, SchemaRegistryClient({"url": settings.registry_url}))
    try:
        versions = client.get_versions(subject)
    except SchemaRegistryError as error:
        if error.http_status_code == 404:
            return {}
        raise
    registered = (client.get_version(subject, version) for version in versions)  # cached by the client
    return {int(r.schema_id or 0): str(r.schema.schema_str) for r in registered}


_registry_clients: dict[str, Any] = {}


def decoded_events(raw: DataFrame, reader: dict[str, Any], writers: dict[int, str]) -> DataFrame:
    """Kafka records -> the fill's input: coordinates, ``decoded`` and the reader schema's fields.

    In the JVM: ``from_avro`` with the writer schema of the record's id; a record of an older
    version is resolved into the reader (``avroSchema``). A record counts as decoded only when
    re-encoding it gives back as many bytes as its body (``from_avro`` ignores bytes left over).
    Everything else (not the wire format, an unknown id, bad or left-over bytes) arrives with
    ``decoded = false`` and its original bytes, and the fill task finds the precise reason.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro, to_avro

    reader_text = json.dumps(reader)
    reader_form = to_parsing_canonical_form(fastavro.parse_schema(reader))
    framed = (F.length("value") >= 6) & (F.substring("value", 1, 1) == F.lit(b"\x00"))
    schema_id = F.conv(F.hex(F.substring("value", 2, 4)), 16, 10).cast("long")
    body = F.expr("substring(value, 6)")
    key = F.coalesce(F.col("key").cast("string"), F.lit(""))
    coordinates = ("kafka_key", "value", "topic", "partition", "offset", "ingest_time")
    written = raw.select(
        key.alias("kafka_key"),
        "value",
        "topic",
        "partition",
        "offset",
        F.unix_micros("timestamp").alias("ingest_time"),
        *(
            F.when(framed & (schema_id == writer_id), from_avro(body, writer, {"mode": "PERMISSIVE"})).alias(
                f"w{writer_id}"
            )
            for writer_id, writer in writers.items()
        ),
    )
    candidates = []
    for writer_id, writer in writers.items():
        decoded = F.col(f"w{writer_id}")
        # PERMISSIVE turns bad bytes into nulls, also inside the record: re-encode only complete records
        required = [f["name"] for f in json.loads(writer)["fields"] if not isinstance(f["type"], list)]
        complete = reduce(lambda a, b: a & b, (decoded[name].isNotNull() for name in required), decoded.isNotNull())
        whole = complete & (F.length(to_avro(F.when(complete, decoded), writer)) == F.length(body))
        if to_parsing_canonical_form(fastavro.parse_schema(json.loads(writer))) == reader_form:
            candidates.append(F.when(whole, decoded))
        else:
            resolved = from_avro(body, writer, {"mode": "PERMISSIVE", "avroSchema": reader_text})
            candidates.append(F.when(whole, resolved))
    if not candidates:  # typed nulls: everything decodes in Python
        candidates.append(from_avro(F.lit(None).cast("binary"), reader_text))
    event = F.coalesce(*candidates) if len(candidates) > 1 else candidates[0]
    fields = [f["name"] for f in reader["fields"]]
    return written.select(*coordinates, event.alias("event")).select(
        *coordinates,
        F.col("event").isNotNull().alias("decoded"),
        *(
            F.unix_micros(F.col("event.event_time")).alias(name) if name == "event_time" else F.col(f"event.{name}")
            for name in fields
        ),
    )
