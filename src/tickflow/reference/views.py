"""The reference data as the enrichment SQL sees it: ``ref_instruments`` and ``ref_fx_rates``.

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

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

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
