-- A restored state must rebuild each field's register exactly: value, as-of time and the Kafka
-- offset that set it (the tie-breaker at equal event time).
ALTER TABLE ops.state_snapshots ADD COLUMNS (source_offset BIGINT COMMENT 'offset of the event that set the value');
