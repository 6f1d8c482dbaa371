"""
### enrichment_stream

Runs and watches the long-running Spark enrichment app (`spark_apps/enrichment_stream.py`:
md.events → forward-fill → enrichment → md.enriched).

**Params** — `action`:

- `ensure` (default, and what the 5-minute watchdog runs): start the app unless it runs;
  restart it when it stalled (no micro-batch while input waits). A stream somebody stopped
  on purpose stays stopped for scheduled runs; a manual `ensure` starts it again.
- `restart`: stop after the current micro-batch and start again from the checkpoint.
- `stop`: stop after the current micro-batch.

**Never two copies**: the start takes a machine-level lock and checks for a running copy
(pid + start time, and a marker in its environment) in the same step, so a task that runs
twice (scheduler restart, zombie, manual clear) or two concurrent runs cannot start a second one.

**Health** (`check_stream_health`, one line per poke): batch age, input vs processing rate,
consumer lag, DLQ total, state rows, from the progress file the app writes. The task fails
when the app is dead or stalled. App log: `.tickflow/logs/enrichment-stream.log`.

**Sources and sinks** (`check_connectors`, beside the stream): one line per Kafka Connect connector (the
HBase sink, the trades source); fails when a connector or a task is FAILED, naming it and its error:
Connect restarts nothing by itself, and a dead source looks like a quiet market to the stream.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag

from tickflow.airflow.operators.connect import ConnectorsHealthOperator
from tickflow.airflow.operators.stream import ACTIONS, EnrichmentStreamOperator
from tickflow.airflow.sensors.stream import EnrichmentStreamHealthSensor


@dag(
    dag_id="enrichment_stream",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["stream", "spark", "market-data"],
    params={"action": Param("ensure", enum=list(ACTIONS), description="ensure | restart | stop")},
    default_args={"owner": "market-data-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
)
def enrichment_stream() -> None:
    manage = EnrichmentStreamOperator(task_id="manage_stream", action="{{ params.action }}")
    check = EnrichmentStreamHealthSensor(
        task_id="check_stream_health",
        expect="{{ 'stopped' if params.action == 'stop' else 'healthy' }}",
        poke_interval=10,
        timeout=600,
    )
    manage >> check
    ConnectorsHealthOperator(task_id="check_connectors")


enrichment_stream()
