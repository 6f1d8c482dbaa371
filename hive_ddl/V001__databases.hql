-- Databases: ref (reference data), ops (operational records), md (market-data archive).
CREATE DATABASE IF NOT EXISTS ref COMMENT 'Reference data refreshed from the source systems';
CREATE DATABASE IF NOT EXISTS ops COMMENT 'Operational records: loads, state snapshots, reconciliations';
CREATE DATABASE IF NOT EXISTS md COMMENT 'Market-data archives for backfills';
