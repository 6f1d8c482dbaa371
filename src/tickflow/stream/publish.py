"""Publishing a micro-batch: filled rows -> enrichment SQL -> Avro -> md.enriched, in one Spark job.

The enrichment SQL (``spark_apps/enrichment.sql``) joins the batch's filled rows with
``ref_instruments`` and ``ref_fx_rates``: for the live stream the Hive views ``ref.instruments`` and
``ref.fx_rates`` read once per reference load and kept as small local tables Spark broadcasts, instead
of resolving the views and scanning their Parquet for every micro-batch. Whether a new load was
swapped in is one metastore call per view and batch, so a refresh shows at the next batch.

Both reference tables carry a validity, ``in_force_from`` (inclusive) and ``in_force_to`` (exclusive),
NULL meaning open-ended, and the SQL joins a row only where the event time lies inside it. The live
stream's tables (:func:`current_reference`) are open-ended on both sides: the current attributes apply
to every event, late ones included (docs/architecture.md). A backfill binds the same names to the SCD2 history
(:func:`reference_history`), so the same SQL enriches each event as of its own time.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from tickflow.avro_codec import confluent_prefix
from tickflow.errors import TickflowError
from tickflow.kafka_auth import Principal, spark_kafka_options
from tickflow.settings import Settings
from tickflow.stream.settings import StreamSettings
from tickflow.topics import ENRICHED, topic_partitions

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

REFERENCE_VIEWS = {"ref_instruments": "ref.instruments", "ref_fx_rates": "ref.fx_rates"}
VALIDITY = ("in_force_from", "in_force_to")


def current_reference(spark: SparkSession) -> dict[str, DataFrame]:
    """The current views, valid whatever the event time (both validity bounds NULL): the live stream's."""
    from pyspark.sql import functions as F

    never = F.lit(None).cast("timestamp")
    return {
        name: spark.table(view).select("*", *(never.alias(bound) for bound in VALIDITY))
        for name, view in REFERENCE_VIEWS.items()
    }


def reference_history(spark: SparkSession) -> dict[str, DataFrame]:
    """The reference data as it was at any time, for backfills (as of event time, docs/architecture.md).

    ``ref_instruments``: every SCD2 row of ``ref.instruments_history`` (the latest good load), in force
    from ``valid_from`` until ``valid_to``; ``reference_version`` is that load's version, as the current
    view names it. An event older than an instrument's first row finds none and is flagged unenriched,
    as an unknown instrument is: nothing was known about it then.

    ``ref_fx_rates``: ``ref.fx_rates_history``, every fixing of the loads still kept, each in force from
    its ``as_of`` until the currency's next fixing. The oldest kept fixing of a currency is also used for
    events before it (``in_force_from`` NULL): a USD value from the nearest known rate is more useful than
    none, and the rate's ``as_of`` is not in the record, so the choice is documented here. A currency fixed
    twice at the same ``as_of`` keeps the fixing of the newer load.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    instruments = spark.table("ref.instruments_history").select(
        "*",
        F.col("load_version").alias("reference_version"),
        F.col("valid_from").alias("in_force_from"),
        F.col("valid_to").alias("in_force_to"),
    )
    newest_first = Window.partitionBy("currency", "as_of").orderBy(F.col("load_version").desc())
    by_time = Window.partitionBy("currency").orderBy("as_of")
    fixings = (
        spark.table("ref.fx_rates_history")
        .withColumn("rank", F.row_number().over(newest_first))
        .where("rank = 1")
        .drop("rank")
    )
    fx = fixings.select(
        "*",
        F.when(F.row_number().over(by_time) > 1, F.col("as_of")).alias("in_force_from"),
        F.lead("as_of").over(by_time).alias("in_force_to"),
    )
    return {"ref_instruments": instruments, "ref_fx_rates": fx}


def bind_reference(frames: dict[str, DataFrame]) -> list[DataFrame]:
    """Cache ``frames`` and register them under their names as broadcast tables; returns the cached frames
    (for ``unpersist``). Hundreds to a few hundred thousand rows, read once."""
    from pyspark.sql import functions as F

    cached = []
    for name, frame in frames.items():
        frame = frame.cache()
        frame.count()
        cached.append(frame)
        F.broadcast(frame).createOrReplaceTempView(name)  # joined without a shuffle of the batch
    return cached


class ReferenceSnapshot:
    """The reference views as local tables, re-read only when a refresh points a view at a new load."""

    def __init__(self) -> None:
        self.definitions: dict[str, str] = {}
        self.cached: list[DataFrame] = []

    def refresh(self, spark: SparkSession) -> bool:
        """Register ``ref_instruments`` / ``ref_fx_rates`` for this batch; True when they were re-read."""
        catalog = spark._jsparkSession.sharedState().externalCatalog()  # one metastore call, no SQL to plan
        definitions = {
            name: str(catalog.getTable(*view.split(".")).viewText().get()) for name, view in REFERENCE_VIEWS.items()
        }
        if definitions == self.definitions:
            return False
        for frame in self.cached:
            frame.unpersist()
        self.cached = bind_reference(current_reference(spark))
        self.definitions = definitions
        log.info(
            "reference data loaded: %s", {v: d.rsplit("load_version", 1)[-1].strip() for v, d in definitions.items()}
        )
        return True


def check_enrichment_sql(spark: SparkSession, sql: str, filled_schema: StructType, expected_columns: list[str]) -> None:
    """Analyse the enrichment SQL against an empty batch, so a broken query fails at start-up."""
    empty = spark.createDataFrame([], filled_schema)
    empty.createOrReplaceTempView("filled_events")
    try:
        columns = spark.sql(sql).columns
    except Exception as error:
        raise TickflowError(f"The enrichment SQL does not run: {str(error).splitlines()[0]}") from error
    if columns != expected_columns:
        missing = [c for c in expected_columns if c not in columns]
        extra = [c for c in columns if c not in expected_columns]
        raise TickflowError(
            "The enrichment SQL must return the columns of EnrichedEvent in order "
            f"(missing: {missing or 'none'}; unexpected: {extra or 'none'}; order as in the schema file)."
        )


def register_output_schema(settings: Settings, stream: StreamSettings) -> tuple[int, str]:
    """Register EnrichedEvent under the output topic's subject; returns (schema id, schema text)."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    from tickflow.schemas import TOPIC_SCHEMAS, load

    schema = load(TOPIC_SCHEMAS[ENRICHED.name], settings.schemas_dir)
    try:
        client = SchemaRegistryClient(settings.registry_client_config)
        schema_id = client.register_schema(f"{stream.output_topic}-value", Schema(schema.text, "AVRO"))
    except Exception as error:
        raise TickflowError(
            f"The schema registry at {settings.registry_url} did not take {schema.full_name} ({error}): "
            "start the stack with `tickflow stack up`."
        ) from error
    return int(schema_id), schema.text


def enriched_events(filled: DataFrame, sql: str) -> DataFrame:
    """Filled rows (FILLED_SCHEMA) -> EnrichedEvent rows (the schema's columns, before Avro) through the
    enrichment SQL, joined with whatever ``ref_instruments`` / ``ref_fx_rates`` the caller bound."""
    filled.createOrReplaceTempView("filled_events")
    return filled.sparkSession.sql(sql)


@lru_cache(maxsize=4)
def framed_value(schema_id: int, schema_text: str) -> Column:
    """The EnrichedEvent row as Confluent framing + Avro body: the bytes the stream publishes and the HBase
    sink stores in md:history as they are. Built once per schema and reused on every micro-batch: its ~70
    columns cost ~50 ms of Py4J calls to build (as ``decode._decode_stages``)."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import to_avro

    columns = [f["name"] for f in json.loads(schema_text)["fields"]]
    record = F.struct(*(F.col(c) for c in columns))
    return F.concat(F.lit(confluent_prefix(schema_id)), to_avro(record, schema_text))


def framed(enriched: DataFrame, schema_id: int, schema_text: str, partitions: int) -> DataFrame:
    """EnrichedEvent rows -> ``key`` (the instrument id), ``value`` (:func:`framed_value`) and ``partition``:
    CRC-32 of the key modulo the topic's ``partitions``, as librdkafka's default partitioner chooses for
    md.events, so an instrument has the same partition number in both topics (Spark's writer would hash with
    murmur2 and spread them otherwise: 64% of md.enriched on half the partitions, one sink task twice as busy)."""
    from pyspark.sql import functions as F

    key = F.col("instrument_id").cast("binary")
    return enriched.select(
        key.alias("key"),
        framed_value(schema_id, schema_text).alias("value"),
        F.pmod(F.crc32(key), F.lit(partitions)).cast("int").alias("partition"),
    )


class Publisher:
    """Writes a batch's enriched rows to the output topic as Confluent-framed Avro."""

    def __init__(self, settings: Settings, stream: StreamSettings, schema_id: int, schema_text: str) -> None:
        self.stream = stream
        self.schema_id = schema_id
        self.schema_text = schema_text
        self.columns = [f["name"] for f in json.loads(schema_text)["fields"]]
        self.reference = ReferenceSnapshot()
        self.kafka_login = spark_kafka_options(settings, Principal.STREAM)  # read once, not per micro-batch
        self.partitions = topic_partitions(settings, stream.output_topic)

    def publish(self, enriched: DataFrame) -> None:
        (
            framed(enriched, self.schema_id, self.schema_text, self.partitions)
            .write.format("kafka")
            .options(**self.kafka_login)
            .option("kafka.linger.ms", str(self.stream.producer_linger_ms))
            .option("kafka.batch.size", str(self.stream.producer_batch_bytes))
            .option("kafka.compression.type", "lz4")
            .option("topic", self.stream.output_topic)
            .save()
        )
