"""
### hbase_maintenance

Keeps HBase's market-data tables compact and checks that `md:latest` holds what the stream published.

**Schedule**: daily at 22:15 UTC. That is the quietest time of the market-data day: after the US close
(20:00-21:00 UTC) and before Sydney and Tokyo open (22:00-00:00 UTC, so the run, minutes long, ends
before the Asian volume arrives); compaction rewrites every store file, so it runs when the sink writes least.

1. `compact_md_tables`: flush, then major-compact `md:latest` and `md:history` (a short-lived HBase admin
   JVM; Thrift 1's "major" compaction is a minor one in HBase 2.6.1), and wait until every store holds one
   file. Store files before and after are logged. Fails after 30 minutes, with the stores still crowded.
2. `reconcile_md_latest` (runs even when the compaction failed): compares every `md:latest` row with
   the last record of the instrument in `md.enriched` (exact: every cell it implies, or a newer one) and
   with the latest state snapshot in `ops.state_snapshots` (HBase at least as new per field). An instrument
   is *missing* (no row, or cells absent), *stale* (cells older, or other bytes), *matched*, or *extra*
   (a row neither explains: reported, never deleted). One row per run in `ops.hbase_reconciliation`
   (counts and up to 5 examples of each kind, JSON). Records of the last 30 s are not expected yet.

**Params**: `repair` (default false): re-put the topic's last record of each missing or stale instrument,
as the sink writes it (idempotent: cells keep their own timestamps). `snapshot_id` (default: the latest).
`compact` (default true): false skips the compaction, e.g. for a repair right after a run that compacted.

The run fails when instruments remain missing or stale (after the repair, if asked), with the count in
the last log line. Deleted cells come back only once the delete markers are compacted away: compaction runs
first, so a repair in the same run restores cells deleted before it. Same commands without Airflow:
`tickflow hbase compact`, `tickflow hbase reconcile [--repair]`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag

from tickflow.airflow.operators.hbase import HBaseCompactionOperator, HBaseReconciliationOperator


@dag(
    dag_id="hbase_maintenance",
    schedule="15 22 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["hbase", "maintenance", "market-data"],
    params={
        "repair": Param(False, type="boolean", description="re-put missing or stale instruments from md.enriched"),
        "snapshot_id": Param("", type="string", description="state snapshot to compare with (empty: the latest)"),
        "compact": Param(True, type="boolean", description="major-compact md:latest and md:history first"),
    },
    default_args={"owner": "market-data-platform", "retries": 1, "retry_delay": timedelta(minutes=2)},
)
def hbase_maintenance() -> None:
    compact = HBaseCompactionOperator(
        task_id="compact_md_tables", compact="{{ params.compact }}", execution_timeout=timedelta(minutes=40)
    )
    reconcile = HBaseReconciliationOperator(
        task_id="reconcile_md_latest",
        repair="{{ params.repair }}",
        snapshot_id="{{ params.snapshot_id }}",
        trigger_rule="all_done",
        execution_timeout=timedelta(minutes=30),
    )
    compact >> reconcile


hbase_maintenance()
