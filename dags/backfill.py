"""
### backfill

Reprocesses `md.events` over a time range with the enrichment stream's own code (decode, validate,
forward-fill, enrichment SQL), enriched **as of each event's time** from the SCD2 reference history,
and writes the result to HBase `md:history` (the cells the sink writes), the Hive archive
`md.enriched_archive`, or both. Manual only: trigger it with the form.

**Params**

- `start`, `end`: the event-time range, `[start, end)`, ISO 8601 (UTC unless an offset is given).
- `instruments`: instrument ids (`MIC:symbol`), one per line; empty means all instruments.
- `target`: `hbase`, `archive` or `both`; or `check`: write nothing, compare what the live stream
  published on `md.enriched` for the range with the recomputation, field by field (as-of times too), and
  add a row to `ops.replay_checks` (counts per kind, examples). Differences a reference change or other
  batch boundaries explain are counted apart; any other fails the run, naming an example.

**Rules.** Events before `start` warm the fill up and are not written, so the first record carries the
values the instrument had at `start`. The warm-up starts from the newest state snapshot
(`ops.state_snapshot_index`) of the topic taken before the range whose offsets Kafka still holds: its
registers, then the events after its offsets; without one, from the earliest offset Kafka still holds
(the log says which). The read ends at the first record sent 5 minutes after `end`. The live stream's
state, checkpoint and `md.dlq` are never touched (rejected records are counted); `md:latest` is not
written. Running the same backfill twice leaves the same rows: HBase cells are keyed by instrument and
event time, and the archive's affected date partitions are rewritten with the backfilled rows replaced
and every other row kept.

**Failures** end the run with one sentence as the last log line: bad parameters, an unknown instrument
or a range without data fail at once without retry. Progress (records read, rows written, rate) is logged
per chunk.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag

from tickflow.airflow.operators.backfill import BackfillOperator


@dag(
    dag_id="backfill",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["backfill", "spark", "market-data"],
    params={
        "start": Param(
            type="string", format="date-time", title="Start", description="First event time to backfill (inclusive)."
        ),
        "end": Param(
            type="string",
            format="date-time",
            title="End",
            description="Event time the backfill ends at (exclusive).",
        ),
        "instruments": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Instruments",
            description="Instrument ids (MIC:symbol), one per line; leave empty for all instruments.",
        ),
        "target": Param(
            "both",
            enum=["hbase", "archive", "both", "check"],
            title="Target",
            description="hbase: md:history cells; archive: md.enriched_archive; both; check: compare the live "
            "md.enriched with the recomputation (ops.replay_checks), write nothing.",
        ),
    },
    default_args={"owner": "market-data-platform", "retries": 1, "retry_delay": timedelta(minutes=1)},
)
def backfill() -> None:
    BackfillOperator(task_id="backfill_events")


backfill()
