"""The reference data as the enrichment SQL sees it: ``ref_instruments`` and ``ref_fx_rates``.

The enrichment SQL (``spark_apps/enrichment.sql``) joins the batch's filled rows with
``ref_instruments`` and ``ref_fx_rates``: for the live stream the Hive views ``ref.instruments`` and
``ref.fx_rates`` as they are when each micro-batch is planned (:func:`bind_current_reference`), read
once per reference load and kept as small tables Spark broadcasts. Whether a new load was swapped in
is one metastore call per view and batch, so a refresh shows at the next batch without a restart.

Both reference tables carry a validity, ``in_force_from`` (inclusive) and ``in_force_to`` (exclusive),
NULL meaning open-ended, and the SQL joins a row only where the event time lies inside it. The live
stream's tables (:func:`bind_current_reference`) are open-ended on both sides: the current attributes apply
to every event, late ones included (docs/architecture.md). A backfill binds the same names to the SCD2 history
(:func:`reference_history`), so the same SQL enriches each event as of its own time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


REFERENCE_VIEWS = {"ref_instruments": "ref.instruments", "ref_fx_rates": "ref.fx_rates"}
# The views whose texts say which load each reads: a refresh re-points ref.instruments_history and ref.fx_rates
# (``ALTER VIEW``, tickflow.reference.refresh); ref.instruments reads the former.
LOAD_VIEWS = {"ref.instruments": ("ref.instruments", "ref.instruments_history"), "ref.fx_rates": ("ref.fx_rates",)}


def bind_current_reference(spark: SparkSession) -> None:
    """Register the current views, valid whatever the event time (both validity bounds NULL), as the live stream
    joins them: ``io.tickflow.stream.reference.CurrentReference`` (jvm/stream) reads a view again when a batch is
    planned after a refresh pointed it at a new load, so the query, analysed once, follows the refreshes."""
    from pyspark.sql import functions as F

    for name, view in REFERENCE_VIEWS.items():
        current = (
            spark.read.format("io.tickflow.stream.reference.CurrentReference")
            .option("view", view)
            .option("watch", ",".join(LOAD_VIEWS[view]))
            .load()
        )
        F.broadcast(current).createOrReplaceTempView(name)  # joined without a shuffle of the batch


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
