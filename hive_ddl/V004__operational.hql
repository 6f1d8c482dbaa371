-- Operational tables the DAGs write: reference loads (audit), forward-fill state snapshots,
-- HBase reconciliation reports, and an archive of enriched events for backfills.
CREATE TABLE IF NOT EXISTS ops.reference_loads (
  load_version BIGINT,
  dataset STRING COMMENT 'instruments | fx_rates',
  started_at TIMESTAMP,
  finished_at TIMESTAMP,
  status STRING COMMENT 'loaded | rejected | failed',
  rows_in BIGINT COMMENT 'rows read from the source',
  rows_current BIGINT COMMENT 'current rows after the load',
  rows_opened BIGINT COMMENT 'SCD2 rows opened (new or changed)',
  rows_closed BIGINT COMMENT 'SCD2 rows closed (changed or gone)',
  message STRING COMMENT 'what was wrong, for a rejected load'
) USING parquet
COMMENT 'One row per reference-data load attempt, good or rejected';

CREATE TABLE IF NOT EXISTS ops.state_snapshots (
  snapshot_id STRING,
  instrument_id STRING,
  field STRING COMMENT 'the forward-filled field',
  value_json STRING COMMENT 'the stored value, JSON-encoded',
  as_of TIMESTAMP COMMENT 'event time the value was observed',
  taken_at TIMESTAMP
) USING parquet PARTITIONED BY (snapshot_id)
COMMENT 'Exports of the stream''s forward-fill state; the app can restart from one';

CREATE TABLE IF NOT EXISTS ops.hbase_reconciliation (
  run_id STRING,
  instrument_id STRING,
  status STRING COMMENT 'match | missing | stale | repaired',
  detail STRING,
  checked_at TIMESTAMP,
  run_date DATE
) USING parquet PARTITIONED BY (run_date)
COMMENT 'Reconciliation of HBase against state snapshots and md.enriched';

CREATE TABLE IF NOT EXISTS md.enriched_archive (
  instrument_id STRING,
  event_time TIMESTAMP,
  record_json STRING COMMENT 'the EnrichedEvent as JSON',
  event_date DATE
) USING parquet PARTITIONED BY (event_date)
COMMENT 'Enriched events by event date, for backfills beyond Kafka retention';
