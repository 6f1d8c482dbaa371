"""
### reference_data_refresh

Refreshes the Hive reference tables (`ref.instruments`, `ref.instruments_history`,
`ref.fx_rates`) from the source systems: the security master (PostgreSQL, over JDBC) and
the FX vendor file drop. Quality gates (unique non-null keys, positive tick and lot sizes,
ISO currencies with an FX rate, no collapse of the instrument count) guard an atomic swap
of the views; the running stream sees the new data at its next micro-batch.

A **rejected load fails the run without retry**, with the gate's reason as the task's last
log line; the previous load stays current and the rejection is recorded in `ops.reference_loads`.
Then `check_current_view` confirms through HiveServer2 that the current view has rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.sql.operators.sql import SQLCheckOperator
from airflow.sdk import dag

from tickflow.airflow.operators.reference import ReferenceRefreshOperator


@dag(
    dag_id="reference_data_refresh",
    schedule="0 5 * * 1-5",  # before the European open, on weekdays
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["reference-data", "hive", "spark"],
    default_args={"owner": "market-data-platform", "retries": 1, "retry_delay": timedelta(minutes=1)},
)
def reference_data_refresh() -> None:
    refresh = ReferenceRefreshOperator(task_id="refresh_reference_data")
    check = SQLCheckOperator(
        task_id="check_current_view",
        conn_id="hiveserver2_default",
        sql="SELECT count(*) FROM ref.instruments",
    )
    refresh >> check


reference_data_refresh()
