"""Decoding the Confluent wire format and validating market events (docs/architecture.md).

Every Kafka record either decodes into the latest reader schema of ``MarketEvent`` (records of
any registered version resolve into it, Avro schema resolution) and passes validation, or it
gets the reason it is rejected; rejected records keep their original key and bytes for the
dead-letter topic. Nothing raises on bad input. The stream and the backfill decode in the JVM
(``EventDecoder`` inside ``fill_step``'s operator); ``decoded_events`` is the same in Spark SQL, the
reference the tests hold the JVM decoder equal to (through ``decoded_events_jvm``).

The writer schemas registered under the input's subject are read when a query is planned (``registered_writers``,
``transform.Transform.decoding``); a task that meets an id it was not given reads the subject's versions from the
registry (jvm/stream ``RegistryWriters``): a producer registers its schema before it writes with it, so a read that
began after the task started knows every id in the task's records, and a version registered while the stream runs
decodes without a restart. An id such a read does not know is therefore really unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache, reduce
from typing import TYPE_CHECKING, Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from tickflow.errors import TickflowError
from tickflow.fill.semantics import FILL_FIELDS, FILL_TYPES
from tickflow.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


@dataclass(frozen=True)
class Limits:
    """Validation settings: how far in the future an event may be, how crossed a quote."""

    max_future_us: int = 60_000_000
    crossed_tolerance: float = 0.0  # bid may exceed ask by this fraction of ask


PRICES = tuple(name for name, kind in FILL_TYPES.items() if kind == "double")  # each must be > 0
# Each must be valid UTF-8, as Avro strings are: other bytes would fail the fill's Arrow to pandas conversion.
TEXTS = ("event_id", "instrument_id", *(name for name, kind in FILL_TYPES.items() if kind == "string"))
SIZES = tuple(name for name, kind in FILL_TYPES.items() if kind == "long")  # each must be >= 0 ...
# ... and at most 2^53: the fill gets nullable longs from pandas as doubles, exact only up to there (2^63 - 1
# would fail the state's write and stop the stream at every restart).
MAX_SIZE = 2**53
NOT_FRAMED = "not in the Confluent wire format (no magic byte 0 and schema id)"

_registry_clients: dict[str, Any] = {}


def registered_writers(settings: Settings, subject: str) -> dict[int, str]:
    """Every schema registered under ``subject``, by id (empty when the subject does not exist yet)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    if settings.registry_url not in _registry_clients:  # a client per call costs an SSL context (~0.1 s)
        _registry_clients[settings.registry_url] = SchemaRegistryClient(settings.registry_client_config)
    client = _registry_clients[settings.registry_url]
    try:
        versions = client.get_versions(subject)
    except SchemaRegistryError as error:
        if error.http_status_code == 404:
            return {}
        raise
    registered = (client.get_version(subject, version) for version in versions)  # cached by the client
    return {int(r.schema_id or 0): str(r.schema.schema_str) for r in registered}


def _first(rules: list[tuple[Column, Column]]) -> Column:
    """The reason of the first failing rule, null when none fails."""
    from pyspark.sql import functions as F

    reason = F.lit(None).cast("string")
    for failing, text in reversed(rules):
        reason = F.when(failing, text).otherwise(reason)
    return reason


def decoded_events(raw: DataFrame, reader: dict[str, Any], writers: dict[int, str], limits: Limits) -> DataFrame:
    """Kafka records -> what the fill needs, one row per record:

    ``partition``, ``offset``, ``ingest_time`` (the record's Kafka timestamp, µs), ``reason`` (null
    when the event is valid), ``kafka_key`` and ``value`` (the record's own bytes, only on rejected
    rows), ``event_key`` (a 64-bit hash of event_id: the fill drops repeated events by it),
    ``instrument_id``, ``event_time`` (µs) and the fill fields.

    ``from_avro`` uses the writer schema of the record's id; an older version is resolved into the
    reader (``avroSchema``). ``from_avro`` ignores bytes after the record, so a record counts as
    decoded only when re-encoding it gives back as many bytes as its body.
    """
    stages = _decode_stages(json.dumps(reader), tuple(sorted(writers.items())), limits)
    return reduce(lambda frame, columns: frame.select(*columns), stages, raw)


def decoded_events_jvm(raw: DataFrame, reader: dict[str, Any], writers: dict[int, str], limits: Limits) -> DataFrame:
    """``decoded_events`` as one JVM operator (jvm/stream, ``io.tickflow.stream.decode.DecodeOperator``): a
    mapPartitions that reads each record with Avro schema resolution and applies the same rules in the same order,
    giving the same columns and, record for record, the same reason or the same fields; "now" of the future-time
    rule is read once per task. Needs the module's jar on the session's classpath (tickflow.spark adds it once built).
    """
    from py4j.java_gateway import JavaClass
    from pyspark.sql import DataFrame

    spark = raw.sparkSession
    operator = spark._jvm.io.tickflow.stream.decode.DecodeOperator  # type: ignore[union-attr]
    if not isinstance(operator, JavaClass):
        raise TickflowError(
            "The JVM decoder is not on this Spark session's classpath: build it with "
            "`mvn -f jvm/stream/pom.xml package` (-DskipTests to skip its tests) and start a new session."
        )
    jdf = operator.decode(
        raw._jdf,
        json.dumps(reader),
        {int(writer_id): text for writer_id, text in writers.items()},
        list(FILL_FIELDS),
        int(limits.max_future_us),
        float(limits.crossed_tolerance),
    )
    return DataFrame(jdf, spark)


@lru_cache(maxsize=4)
def _decode_stages(reader_text: str, writers: tuple[tuple[int, str], ...], limits: Limits) -> list[list[Column]]:
    """The selects of ``decoded_events``, built once per set of writer schemas: a column is a JVM object
    made by thousands of Py4J calls (over a second per micro-batch), and it can be reused on every batch."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    reader_form = to_parsing_canonical_form(fastavro.parse_schema(json.loads(reader_text)))
    framed = (F.length("value") >= 6) & (F.substring("value", 1, 1) == F.lit(b"\x00"))
    schema_id = F.when(framed, F.conv(F.hex(F.substring("value", 2, 4)), 16, 10).cast("long"))
    body = F.expr("substring(value, 6)")
    written = [
        [
            F.col("key"),
            F.coalesce(F.col("key").cast("string"), F.lit("")).alias("key_text"),
            F.col("value"),
            F.col("partition"),
            F.col("offset"),
            F.unix_micros("timestamp").alias("ingest_time"),
            schema_id.alias("schema_id"),
        ],
        [
            F.col("*"),
            *(
                F.when(F.col("schema_id") == writer_id, from_avro(body, writer, {"mode": "PERMISSIVE"})).alias(
                    f"w{writer_id}"
                )
                for writer_id, writer in writers
            ),
        ],
    ]
    event, extra_bytes = _resolved(body, writers, reader_text, reader_form)
    known = F.col("schema_id").isin([writer_id for writer_id, _ in writers]) if writers else F.lit(False)
    fields = ("event_id", "instrument_id", "event_time", *FILL_FIELDS)
    kept = [F.col(name) for name in ("key", "key_text", "value", "partition", "offset", "ingest_time", "schema_id")]
    checked = [
        [*kept, extra_bytes.alias("extra_bytes"), event.alias("event")],
        [
            *kept,
            F.col("extra_bytes"),
            F.col("event").isNotNull().alias("decoded"),
            *(F.col(f"event.{name}").alias(name) for name in fields),
        ],
    ]
    reason = _first(
        [
            (F.col("schema_id").isNull(), F.lit(NOT_FRAMED)),
            (~known, F.format_string("unknown schema id %d", "schema_id")),
            (
                ~F.col("decoded") & (F.col("extra_bytes") > 0),
                F.format_string("%d bytes left over after the record (schema id %d)", "extra_bytes", "schema_id"),
            ),
            (~F.col("decoded"), F.format_string("undecodable Avro body for schema id %d", "schema_id")),
            *_validation_rules(limits),
        ]
    )
    rejected = F.col("reason").isNotNull()
    result = [
        F.col("partition"),
        F.col("offset"),
        F.col("ingest_time"),
        F.col("reason"),
        F.when(rejected, F.col("key")).alias("kafka_key"),
        F.when(rejected, F.col("value")).alias("value"),
        F.when(~rejected, F.xxhash64("event_id")).alias("event_key"),
        F.when(~rejected, F.col("instrument_id")).alias("instrument_id"),
        F.when(~rejected, F.unix_micros("event_time")).alias("event_time"),
        *(F.when(~rejected, F.col(name)).alias(name) for name in FILL_FIELDS),
    ]
    return [*written, *checked, [F.col("*"), reason.alias("reason")], result]


def _resolved(
    body: Column, writers: tuple[tuple[int, str], ...], reader_text: str, reader_form: str
) -> tuple[Column, Column]:
    """The event in the reader's schema (null unless a whole record of its writer, with nothing after it) and the
    bytes left over after the record, from the per-writer columns ``w<id>``."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro, to_avro

    events, left_over = [], []
    for writer_id, writer in writers:
        decoded = F.col(f"w{writer_id}")
        # PERMISSIVE turns bad bytes into nulls, also inside the record: re-encode only complete records.
        required = [f["name"] for f in json.loads(writer)["fields"] if not isinstance(f["type"], list)]
        complete = reduce(lambda a, b: a & b, (decoded[name].isNotNull() for name in required), decoded.isNotNull())
        extra = F.length(body) - F.length(to_avro(F.when(complete, decoded), writer))
        left_over.append(F.when(complete, extra))
        same = to_parsing_canonical_form(fastavro.parse_schema(json.loads(writer))) == reader_form
        resolved = decoded if same else from_avro(body, writer, {"mode": "PERMISSIVE", "avroSchema": reader_text})
        events.append(F.when(complete & (extra == 0), resolved))
    if not events:  # nothing registered yet: typed nulls, every record is rejected below
        events.append(from_avro(F.lit(None).cast("binary"), reader_text))
        left_over.append(F.lit(None).cast("int"))
    event = F.coalesce(*events) if len(events) > 1 else events[0]
    extra_bytes = F.coalesce(*left_over) if len(left_over) > 1 else left_over[0]
    return event, extra_bytes


def _validation_rules(limits: Limits) -> list[tuple[Column, Column]]:
    """Why a decoded event must not be filled, the first failing rule first (docs/architecture.md)."""
    from pyspark.sql import functions as F

    def blank(name: str) -> Column:
        return F.col(name).isNull() | (F.trim(F.col(name)) == "")

    now_us = F.unix_micros(F.current_timestamp())
    shown_key = F.when(F.col("key_text") == "", F.lit("None")).otherwise(F.format_string("'%s'", "key_text"))
    rules = [(~F.is_valid_utf8(name), F.lit(f"{name} is not valid UTF-8")) for name in TEXTS]
    rules += [
        (blank("instrument_id"), F.lit("missing instrument_id")),
        (blank("event_id"), F.lit("missing event_id")),
        (
            F.col("key_text") != F.col("instrument_id"),
            F.format_string("message key %s is not the instrument_id '%s'", shown_key, F.col("instrument_id")),
        ),
        (
            F.unix_micros("event_time") < 0,  # also keeps event times clear of the fill's "never" (-2^63)
            F.format_string("event_time %d (µs since the epoch) is before 1970", F.unix_micros("event_time")),
        ),
        (
            F.unix_micros("event_time") > now_us + F.lit(limits.max_future_us),
            F.format_string("event_time %.0fs in the future", (F.unix_micros("event_time") - now_us) / 1e6),
        ),
    ]
    for name in PRICES:  # a set price must be finite and > 0 (which also catches NaN)
        rules.append(
            (
                F.col(name).isNotNull() & (F.isnan(name) | ~(F.col(name) > 0)),  # Spark orders NaN above all
                F.concat(F.lit(f"{name} "), F.col(name).cast("string"), F.lit(" is not positive")),
            )
        )
        rules.append((F.col(name) == float("inf"), F.lit(f"{name} Infinity is not finite")))
    for name in SIZES:
        shown = F.concat(F.lit(f"{name} "), F.col(name).cast("string"))
        rules.append((F.col(name) < 0, F.concat(shown, F.lit(" is negative"))))
        rules.append(
            (F.col(name) > MAX_SIZE, F.concat(shown, F.lit(f" is above {MAX_SIZE}, the largest size kept exact")))
        )
    tolerance = f"{limits.crossed_tolerance:.2%}".replace("%", "%%")  # a format string
    rules.append(
        (
            F.col("bid_price") > F.col("ask_price") * (1 + limits.crossed_tolerance),
            F.format_string(f"bid %s above ask %s beyond the {tolerance} tolerance", "bid_price", "ask_price"),
        )
    )
    return rules
