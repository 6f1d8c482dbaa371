"""Publishing a micro-batch: filled rows -> enrichment SQL -> Avro -> md.enriched, in one Spark job.

The enrichment SQL (``spark_apps/enrichment.sql``) joins the batch's filled rows with
``ref_instruments`` and ``ref_fx_rates``: the Hive views ``ref.instruments`` and ``ref.fx_rates``
read once per reference load and kept as small local tables Spark broadcasts, instead of
resolving the views and scanning their Parquet for every micro-batch. Whether a new load was
swapped in is one metastore call per view and batch, so a refresh shows at the next batch.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from tickflow.avro_codec import confluent_prefix
from tickflow.errors import TickflowError
from tickflow.settings import Settings
from tickflow.stream.settings import StreamSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

REFERENCE_VIEWS = {"ref_instruments": "ref.instruments", "ref_fx_rates": "ref.fx_rates"}


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
        from pyspark.sql import functions as F

        for frame in self.cached:
            frame.unpersist()
        self.cached = []
        for name, view in REFERENCE_VIEWS.items():
            frame = spark.table(view).cache()  # hundreds to a few hundred thousand rows, read once per load
            frame.count()
            self.cached.append(frame)
            F.broadcast(frame).createOrReplaceTempView(name)  # joined without a shuffle of the batch
        self.definitions = definitions
        log.info(
            "reference data loaded: %s", {v: d.rsplit("load_version", 1)[-1].strip() for v, d in definitions.items()}
        )
        return True


def check_enrichment_sql(spark: SparkSession, sql: str, filled_schema: StructType, expected_columns: list[str]) -> None:
    """Analyse the enrichment SQL against an empty batch, so a broken query fails at start-up."""
    from pyspark.sql import functions as F

    empty = spark.createDataFrame([], filled_schema).withColumn("batch_id", F.lit(0).cast("long"))
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

    schema = load(TOPIC_SCHEMAS["md.enriched"], settings.schemas_dir)
    try:
        client = SchemaRegistryClient(settings.registry_client_config)
        schema_id = client.register_schema(f"{stream.output_topic}-value", Schema(schema.text, "AVRO"))
    except Exception as error:
        raise TickflowError(
            f"The schema registry at {settings.registry_url} did not take {schema.full_name} ({error}): "
            "start the stack with `tickflow stack up`."
        ) from error
    return int(schema_id), schema.text


class Publisher:
    """Enriches a batch's filled rows and writes them to the output topic as Confluent-framed Avro."""

    def __init__(self, settings: Settings, stream: StreamSettings, schema_id: int, schema_text: str, sql: str) -> None:
        self.settings = settings
        self.stream = stream
        self.prefix = confluent_prefix(schema_id)
        self.schema_text = schema_text
        self.columns = [f["name"] for f in json.loads(schema_text)["fields"]]
        self.sql = sql
        self.reference = ReferenceSnapshot()

    def publish(self, filled: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F
        from pyspark.sql.avro.functions import to_avro

        spark = filled.sparkSession
        self.reference.refresh(spark)
        filled.withColumn("batch_id", F.lit(batch_id).cast("long")).createOrReplaceTempView("filled_events")
        enriched = spark.sql(self.sql)
        record = F.struct(*(F.col(c) for c in self.columns))
        (
            enriched.select(
                F.col("instrument_id").cast("binary").alias("key"),
                F.concat(F.lit(self.prefix), to_avro(record, self.schema_text)).alias("value"),
            )
            .write.format("kafka")
            .option("kafka.bootstrap.servers", self.settings.bootstrap_servers)
            .option("kafka.linger.ms", str(self.stream.producer_linger_ms))
            .option("kafka.batch.size", str(self.stream.producer_batch_bytes))
            .option("kafka.compression.type", "lz4")
            .option("topic", self.stream.output_topic)
            .save()
        )
