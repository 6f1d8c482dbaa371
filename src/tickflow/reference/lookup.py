"""As-of lookups of reference data, for backfills: the attributes in force at an event's time.

The live stream joins the current views (``ref.instruments``, ``ref.fx_rates``); a backfill
joins the SCD2 history on validity instead, with :data:`INSTRUMENT_AS_OF_JOIN`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# valid_from inclusive, valid_to exclusive (NULL while current). `e` is the events, `h` the history.
INSTRUMENT_AS_OF_JOIN = (
    "e.instrument_id = h.instrument_id AND h.valid_from <= e.event_time "
    "AND (h.valid_to IS NULL OR e.event_time < h.valid_to)"
)


def instruments_as_of(spark: SparkSession, when: datetime) -> DataFrame:
    """Every instrument's attributes valid at ``when`` (UTC wall time)."""
    from pyspark.sql import functions as F

    moment = F.lit(when.strftime("%Y-%m-%d %H:%M:%S.%f")).cast("timestamp")
    history = spark.table("ref.instruments_history")
    return history.where((F.col("valid_from") <= moment) & (F.col("valid_to").isNull() | (moment < F.col("valid_to"))))


def enrich_as_of(events: DataFrame, history: DataFrame) -> DataFrame:
    """Events (with instrument_id, event_time) joined to the attributes valid at each event's time.
    A left join: an event with no valid row keeps null attributes, as an unknown instrument does live."""
    from pyspark.sql import functions as F

    return events.alias("e").join(history.alias("h"), F.expr(INSTRUMENT_AS_OF_JOIN), "left")
