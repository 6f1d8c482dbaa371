-- ops.hbase_reconciliation becomes one row per reconciliation run (the hbase_maintenance DAG writes it):
-- counts, and a few examples of each kind as JSON, instead of the per-instrument rows V004 planned (a run
-- checks every instrument; a row each would be mostly "match"). Nothing wrote the old table.
DROP TABLE IF EXISTS ops.hbase_reconciliation;

CREATE TABLE ops.hbase_reconciliation (
  run_id STRING,
  checked_at TIMESTAMP COMMENT 'UTC',
  snapshot_id STRING COMMENT 'the state snapshot compared with; NULL when there was none',
  topic STRING COMMENT 'the topic whose last record per instrument was compared with',
  repair BOOLEAN COMMENT 'whether missing and stale instruments were re-put from the topic',
  instruments_checked BIGINT COMMENT 'in md:latest, the topic or the snapshot',
  matched BIGINT,
  missing BIGINT COMMENT 'no row, or cells absent',
  stale BIGINT COMMENT 'cells older than expected, or other bytes at the same time',
  extra BIGINT COMMENT 'rows neither the topic nor the snapshot explains (reported, not deleted)',
  repaired BIGINT COMMENT 're-put instruments that match afterwards',
  remaining BIGINT COMMENT 'missing or stale after the repair (the run fails when > 0)',
  examples STRING COMMENT 'JSON: up to 5 instruments of each kind, with their differences',
  run_date DATE
) USING parquet PARTITIONED BY (run_date)
COMMENT 'One row per reconciliation of HBase md:latest against the state snapshot and md.enriched';
