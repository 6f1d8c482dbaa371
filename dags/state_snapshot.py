"""
### state_snapshot

Exports the enrichment stream's forward-fill state to Hive (`ops.state_snapshots`, one row per
instrument and field with its value, event time and source offset; `ops.state_snapshot_index`,
one row per snapshot with the **input offsets** it corresponds to), and restores the stream from one.

**Params** — `action`:

- `snapshot` (default, and what the hourly schedule runs): the state as of the last micro-batch the
  stream committed (the running stream is not disturbed), then retention: the newest `keep_last`
  snapshots and the newest of each of the last `keep_days` days are kept, the rest dropped.
- `restore` with `snapshot_id`: stops the stream through its app control (never two copies), starts
  it on a new checkpoint seeded with the snapshot's registers, reading `md.events` from the
  snapshot's offsets, so it goes on as if it had stopped right after that micro-batch; the old
  checkpoint is kept beside the new one. Then `check_stream_health` waits for it to be healthy.

A snapshot id that does not exist, or a stream with no committed state, fails the run in one sentence.
`tickflow snapshot take | list | restore` do the same from a terminal.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from tickflow.airflow.operators.snapshot import StateRestoreOperator, StateSnapshotOperator
from tickflow.airflow.sensors.stream import EnrichmentStreamHealthSensor


@dag(
    dag_id="state_snapshot",
    schedule="0 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["stream", "state", "hive"],
    params={
        "action": Param("snapshot", enum=["snapshot", "restore"], description="snapshot | restore"),
        "snapshot_id": Param(
            None, type=["null", "string"], description="snapshot: the new id (default: UTC time); restore: which one"
        ),
        "keep_last": Param(24, type="integer", minimum=1, description="Snapshots always kept (newest first)"),
        "keep_days": Param(7, type="integer", minimum=0, description="Days for which the day's newest is kept"),
    },
    default_args={"owner": "market-data-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
)
def state_snapshot() -> None:
    @task.branch(task_id="choose_action")
    def choose_action(params: dict[str, object]) -> str:
        return "restore_snapshot" if params["action"] == "restore" else "export_snapshot"

    export = StateSnapshotOperator(
        task_id="export_snapshot",
        snapshot_id="{{ params.snapshot_id or '' }}",
        keep_last="{{ params.keep_last }}",
        keep_days="{{ params.keep_days }}",
    )
    restore = StateRestoreOperator(task_id="restore_snapshot", snapshot_id="{{ params.snapshot_id or '' }}")
    check = EnrichmentStreamHealthSensor(task_id="check_stream_health", poke_interval=10, timeout=600)
    choose_action() >> [export, restore]
    restore >> check


state_snapshot()
