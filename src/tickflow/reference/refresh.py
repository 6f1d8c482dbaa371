"""The reference-data refresh: source systems -> quality gates -> SCD2 -> atomic swap in Hive.

Each dataset's load is written as a new partition (``load_version``) of its ``*_loads``
table while readers keep using the views; only when the partition is complete is the
view pointed at it (``ALTER VIEW``, one metastore update). A load that fails a gate
is recorded in ``ops.reference_loads`` as rejected, and the views are left alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd

from tickflow.reference import quality, scd2
from tickflow.reference.sources import read_fx_file
from tickflow.runtime.postgres import postgres_password
from tickflow.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

INSTRUMENT_VIEW = (
    "ALTER VIEW ref.instruments_history AS SELECT * FROM ref.instruments_history_loads WHERE load_version = {v}"
)
FX_VIEW = (
    "ALTER VIEW ref.fx_rates AS SELECT currency, usd_per_unit, as_of, source, load_version "
    "FROM ref.fx_rates_loads WHERE load_version = {v}"
)


@dataclass(frozen=True)
class LoadReport:
    dataset: str
    load_version: int
    rows_in: int
    rows_current: int
    opened: int
    closed: int
    seconds: float


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # Spark timestamps are UTC wall time (session tz UTC)


def _audit(spark: SparkSession, row: dict[str, object]) -> None:
    columns = spark.table("ops.reference_loads").columns
    frame = pd.DataFrame([{c: row.get(c) for c in columns}])
    spark.createDataFrame(frame, schema=spark.table("ops.reference_loads").schema).write.insertInto(
        "ops.reference_loads"
    )


def _write_partition(spark: SparkSession, table: str, frame: pd.DataFrame, load_version: int) -> None:
    schema = spark.table(table).schema
    data = frame.assign(load_version=load_version)[schema.fieldNames()]
    data = data.astype(object).where(data.notna(), None)
    spark.createDataFrame(data, schema=schema).createOrReplaceTempView("reference_load")
    columns = ", ".join(f for f in schema.fieldNames() if f != "load_version")
    spark.sql(
        f"INSERT OVERWRITE {table} PARTITION (load_version = {load_version}) SELECT {columns} FROM reference_load"
    )


def _drop_old_loads(spark: SparkSession, table: str, keep: int) -> None:
    versions = sorted(int(r[0].split("=")[1]) for r in spark.sql(f"SHOW PARTITIONS {table}").collect())
    for version in versions[:-keep]:
        spark.sql(f"ALTER TABLE {table} DROP IF EXISTS PARTITION (load_version = {version})")


def refresh_fx(spark: SparkSession, settings: Settings, load_version: int, max_drop: float) -> LoadReport:
    started, started_at = time.monotonic(), _now()
    incoming = read_fx_file(settings)
    before = spark.table("ref.fx_rates").count()
    try:
        quality.enforce("FX rates", quality.check_fx(incoming, before or None, max_drop))
    except quality.QualityGateFailed as failure:
        _audit(spark, {"load_version": load_version, "dataset": "fx_rates", "started_at": started_at,
                       "finished_at": _now(), "status": "rejected", "rows_in": len(incoming),
                       "message": str(failure)})  # fmt: skip
        raise
    frame = incoming.assign(as_of=incoming["as_of"].dt.tz_convert("UTC").dt.tz_localize(None))
    _write_partition(spark, "ref.fx_rates_loads", frame, load_version)
    spark.sql(FX_VIEW.format(v=load_version))
    _audit(spark, {"load_version": load_version, "dataset": "fx_rates", "started_at": started_at,
                   "finished_at": _now(), "status": "loaded", "rows_in": len(incoming),
                   "rows_current": len(incoming), "rows_opened": len(incoming), "rows_closed": before})  # fmt: skip
    return LoadReport("fx_rates", load_version, len(incoming), len(incoming), len(incoming), before,
                      time.monotonic() - started)  # fmt: skip


def read_security_master(spark: SparkSession, settings: Settings) -> pd.DataFrame:
    """The security master's instruments table, read over JDBC."""
    frame = spark.read.jdbc(
        settings.postgres_url,
        "instruments",
        properties={"user": "tickflow", "password": postgres_password(settings), "driver": "org.postgresql.Driver"},
    )
    result: pd.DataFrame = frame.toPandas()
    return result


def refresh_instruments(spark: SparkSession, settings: Settings, load_version: int, max_drop: float) -> LoadReport:
    started, started_at = time.monotonic(), _now()
    incoming = read_security_master(spark, settings)
    history: pd.DataFrame = spark.table("ref.instruments_history").drop("load_version").toPandas()
    listed_before = (
        int((history["is_current"].astype(bool) & history["listed"].astype(bool)).sum()) if len(history) else 0
    )
    fx_currencies = {row.currency for row in spark.table("ref.fx_rates").select("currency").collect()}
    try:
        quality.enforce(
            "instruments", quality.check_instruments(incoming, fx_currencies, listed_before or None, max_drop)
        )
    except quality.QualityGateFailed as failure:
        _audit(spark, {"load_version": load_version, "dataset": "instruments", "started_at": started_at,
                       "finished_at": _now(), "status": "rejected", "rows_in": len(incoming),
                       "message": str(failure)})  # fmt: skip
        raise
    load_time = pd.Timestamp(started_at)
    merged = scd2.merge(history, incoming.assign(updated_at=incoming["updated_at"].dt.tz_localize(None)),
                        load_time, load_version)  # fmt: skip
    _write_partition(spark, "ref.instruments_history_loads", merged.history, load_version)
    spark.sql(INSTRUMENT_VIEW.format(v=load_version))
    current = int(merged.history["is_current"].astype(bool).sum())
    _audit(spark, {"load_version": load_version, "dataset": "instruments", "started_at": started_at,
                   "finished_at": _now(), "status": "loaded", "rows_in": len(incoming), "rows_current": current,
                   "rows_opened": merged.opened, "rows_closed": merged.closed})  # fmt: skip
    return LoadReport("instruments", load_version, len(incoming), current, merged.opened, merged.closed,
                      time.monotonic() - started)  # fmt: skip


def refresh_with_session(settings: Settings, max_drop: float = 0.2) -> list[LoadReport]:
    """:func:`refresh_all` in a Spark session of its own, stopped at the end (the command line's refresh)."""
    from tickflow.spark import spark_session

    spark = spark_session(settings, "tickflow-reference-refresh")
    try:
        return refresh_all(spark, settings, max_drop=max_drop)
    finally:
        spark.stop()


def refresh_all(
    spark: SparkSession, settings: Settings, max_drop: float = 0.2, keep_loads: int = 10
) -> list[LoadReport]:
    """FX first (the instruments' currency gate uses it), then instruments; stops at the first rejection."""
    load_version = int(time.time() * 1000)
    reports = [
        refresh_fx(spark, settings, load_version, max_drop),
        refresh_instruments(spark, settings, load_version, max_drop),
    ]
    for table in ("ref.fx_rates_loads", "ref.instruments_history_loads"):
        _drop_old_loads(spark, table, keep_loads)
    return reports
