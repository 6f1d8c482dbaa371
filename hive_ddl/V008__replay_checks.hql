-- ops.replay_checks: one row per check of the live output against its replay (the backfill with target=check,
-- from the backfill DAG or `tickflow backfill --target check`): the (instrument, event time) of a range compared
-- field by field, as-of times included, counted by kind (tickflow.backfill.replay_check), a few examples as JSON.
CREATE TABLE IF NOT EXISTS ops.replay_checks (
  run_id STRING,
  checked_at TIMESTAMP COMMENT 'UTC',
  range_start TIMESTAMP COMMENT 'event time, inclusive (UTC)',
  range_end TIMESTAMP COMMENT 'event time, exclusive (UTC)',
  instruments STRING COMMENT 'comma-separated ids, or all',
  live_topic STRING COMMENT 'the topic the live stream published to',
  live_rows BIGINT COMMENT '(instrument, event time) the live topic has in the range',
  replay_rows BIGINT COMMENT '(instrument, event time) the replay computed',
  matched BIGINT,
  different BIGINT COMMENT 'same key, other values, not explained: the run fails',
  missing_live BIGINT COMMENT 'replayed, never published: the run fails',
  missing_replay BIGINT COMMENT 'published, not replayed: the run fails',
  reference_changed BIGINT COMMENT 'only the enrichment differs, under another reference version (legitimate)',
  batching BIGINT COMMENT 'a late value or merged events, cut into other batches (legitimate)',
  examples STRING COMMENT 'JSON: up to 5 of each kind, with the differing fields on both sides',
  run_date DATE
) USING parquet PARTITIONED BY (run_date)
COMMENT 'One row per check of md.enriched against the recomputation of the same range by the backfill';
