"""As-of lookups of reference data, for backfills: the attributes in force at an event's time.

The live stream joins the current views (``ref.instruments``, ``ref.fx_rates``); a backfill
reads the SCD2 history on validity instead: valid_from inclusive, valid_to exclusive (NULL while
current).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def instruments_as_of(spark: SparkSession, when: datetime) -> DataFrame:
    """Every instrument's attributes valid at ``when`` (UTC wall time)."""
    from pyspark.sql import functions as F

    moment = F.lit(when.strftime("%Y-%m-%d %H:%M:%S.%f")).cast("timestamp")
    history = spark.table("ref.instruments_history")
    return history.where((F.col("valid_from") <= moment) & (F.col("valid_to").isNull() | (moment < F.col("valid_to"))))
