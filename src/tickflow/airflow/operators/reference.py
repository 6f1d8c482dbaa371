"""The reference-data refresh as a spark-submit of ``spark_apps/reference_refresh.py``.

Reuses the apache-spark provider's operator (the ``spark_default`` connection gives the
master and binary); adds what only tickflow knows at run time: the Spark configuration of
``tickflow.spark`` (metastore, warehouse, pinned connector jars, fetched on first use) and,
when the load is rejected by a quality gate, the gate's reason from ``ops.reference_loads``
(through the apache-hive provider's HiveServer2 hook) as the task's failure.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from tickflow.settings import REPO_ROOT

APPLICATION = str(REPO_ROOT / "spark_apps" / "reference_refresh.py")
REJECTION_SQL = (
    "SELECT dataset, message FROM ops.reference_loads "
    "WHERE status = 'rejected' AND started_at >= '{since}' ORDER BY started_at DESC LIMIT 1"
)


class ReferenceRefreshOperator(SparkSubmitOperator):
    """Run the refresh (gates, SCD2, atomic swap); a rejected load fails without retry, saying why."""

    def __init__(self, *, hiveserver2_conn_id: str = "hiveserver2_default", **kwargs: Any) -> None:
        kwargs.setdefault("application", APPLICATION)
        kwargs.setdefault("name", "tickflow-reference-refresh")
        super().__init__(**kwargs)
        self.hiveserver2_conn_id = hiveserver2_conn_id

    def execute(self, context: Any) -> None:
        from tickflow.settings import Settings
        from tickflow.spark import spark_conf

        settings = Settings()
        conf = spark_conf(settings, self.name or "tickflow-reference-refresh")
        conf.pop("spark.master")  # the connection's
        self.conf = {**conf, **(self.conf or {})}
        self.env_vars = {"SPARK_LOCAL_IP": settings.host, "PYSPARK_PYTHON": sys.executable, **(self.env_vars or {})}
        started = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        try:
            super().execute(context)
        except AirflowException as failure:
            rejection = self._rejection_since(started)
            if rejection is None:
                raise
            self.log.error("reference load REJECTED: %s", rejection)
            raise AirflowFailException(f"reference load rejected: {rejection}") from failure
        self.log.info("reference load ACCEPTED: the views point at the new load")

    def _rejection_since(self, started: datetime) -> str | None:
        from airflow.providers.apache.hive.hooks.hive import HiveServer2Hook

        try:
            rows = HiveServer2Hook(hiveserver2_conn_id=self.hiveserver2_conn_id).get_records(
                REJECTION_SQL.format(since=started.isoformat(sep=" "))
            )
        except Exception as error:  # noqa: BLE001 - the original failure matters more than this lookup
            self.log.warning("could not read ops.reference_loads for the reason: %s", error)
            return None
        if not rows:
            return None
        dataset, message = rows[0]
        return f"{dataset}: {message}"
