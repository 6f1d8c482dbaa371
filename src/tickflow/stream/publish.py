"""Publishing the stream: filled rows -> enrichment SQL -> Avro -> md.enriched, the query's Kafka sink.

The enrichment SQL (``spark_apps/enrichment.sql``) joins the batch's filled rows with the reference tables
``ref_instruments`` and ``ref_fx_rates`` that ``tickflow.reference.views`` registers: the current views for
the live stream (re-read once per reference load, at the next batch), the SCD2 history for a backfill.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from tickflow.avro_codec import confluent_prefix
from tickflow.errors import TickflowError
from tickflow.kafka_auth import TRANSACTIONAL_ID_PREFIX, Principal, spark_kafka_options
from tickflow.settings import Settings
from tickflow.stream.settings import StreamSettings
from tickflow.topics import ENRICHED, topic_partitions

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery
    from pyspark.sql.types import StructType

    from tickflow.runtime.location import Location

log = logging.getLogger(__name__)


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


TRANSACTIONAL_SINK = "io.tickflow.stream.sink.TransactionalKafka"


class Publisher:
    """Writes a batch's enriched rows to the output topic as Confluent-framed Avro: exactly once through
    ``TransactionalKafka`` (jvm/stream: a Kafka transaction per task, with its dead letters and a marker of the
    batch id in the commits topic, so a replayed batch is not written again), or, with ``exactly_once`` off,
    through Spark's Kafka sink (at-least-once)."""

    def __init__(self, settings: Settings, stream: StreamSettings, schema_id: int, schema_text: str) -> None:
        self.stream = stream
        self.schema_id = schema_id
        self.schema_text = schema_text
        self.columns = [f["name"] for f in json.loads(schema_text)["fields"]]
        self.kafka_login = spark_kafka_options(settings, Principal.STREAM)  # read once, not per micro-batch
        self.partitions = topic_partitions(settings, stream.output_topic)
        # A micro-batch has a task per input partition with records: each is fenced when the query starts.
        self.input_partitions = topic_partitions(settings, stream.input_topic) if stream.exactly_once else 0

    def start(self, enriched: DataFrame, checkpoint: Location) -> StreamingQuery:
        """Start the streaming query that writes ``enriched`` (a stream) to the output topic, on ``checkpoint``."""
        writer = (
            framed(enriched, self.schema_id, self.schema_text, self.partitions)
            .writeStream.queryName(self.stream.query_name)
            .options(**self.kafka_login)
            .option("kafka.linger.ms", str(self.stream.producer_linger_ms))
            .option("kafka.batch.size", str(self.stream.producer_batch_bytes))
            .option("kafka.compression.type", "lz4")
            .option("topic", self.stream.output_topic)
            .option("checkpointLocation", checkpoint.as_uri())
            .trigger(processingTime=self.stream.trigger_interval)
        )
        if self.stream.exactly_once:
            writer = (
                writer.format(TRANSACTIONAL_SINK)
                .option("commits.topic", self.stream.commits_topic)
                .option("partitions", str(self.input_partitions))
                .option("transactional.id.prefix", TRANSACTIONAL_ID_PREFIX)
            )
        else:
            writer = writer.format("kafka")
        return writer.start()
