-- One row per state snapshot: where in the input its registers stand (the end offsets of the last
-- micro-batch it includes), so a restore starts a new checkpoint exactly there, and what it holds.
CREATE TABLE IF NOT EXISTS ops.state_snapshot_index (
  batch_id BIGINT COMMENT 'the last micro-batch the snapshot includes',
  input_topic STRING,
  input_offsets STRING COMMENT 'JSON {partition: next offset to read} after that micro-batch',
  instruments BIGINT,
  registers BIGINT COMMENT 'instrument x field values in the snapshot',
  taken_at TIMESTAMP,
  snapshot_id STRING
) USING parquet PARTITIONED BY (snapshot_id)
COMMENT 'The state snapshots in ops.state_snapshots and the input offsets each corresponds to';
