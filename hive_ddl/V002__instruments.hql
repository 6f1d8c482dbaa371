-- Instruments with SCD2 history. Every refresh writes the complete history as a new partition
-- (load_version) of ref.instruments_history_loads, then points the views at it. A view change is one
-- metastore update, so readers see the old load or the new one, never a half-written table.
-- Parquet: columnar, typed, read by every engine here; unpartitioned within a load because a load is
-- small (one row per instrument version) and is always read whole.
CREATE TABLE IF NOT EXISTS ref.instruments_history_loads (
  instrument_id STRING COMMENT 'MIC:symbol, the key of market events',
  symbol STRING,
  isin STRING,
  name STRING,
  exchange STRING COMMENT 'MIC (ISO 10383)',
  currency STRING COMMENT 'ISO 4217',
  asset_class STRING,
  sector STRING,
  tick_size DOUBLE,
  lot_size BIGINT,
  listed BOOLEAN,
  source_updated_at TIMESTAMP COMMENT 'when the security master last changed the row',
  valid_from TIMESTAMP COMMENT 'SCD2: first instant these attributes were in force',
  valid_to TIMESTAMP COMMENT 'SCD2: first instant they were not (NULL while current)',
  is_current BOOLEAN,
  row_version BIGINT COMMENT 'the load that opened this row',
  load_version BIGINT
) USING parquet PARTITIONED BY (load_version)
COMMENT 'Every load of the SCD2 instrument history; read it through the views';

CREATE VIEW IF NOT EXISTS ref.instruments_history
COMMENT 'SCD2 history of instruments as of the latest good load'
AS SELECT * FROM ref.instruments_history_loads WHERE load_version = -1;

CREATE VIEW IF NOT EXISTS ref.instruments
COMMENT 'Current attributes of every known instrument (the live stream joins this)'
AS SELECT instrument_id, symbol, isin, name, exchange, currency, asset_class, sector, tick_size, lot_size,
          listed, valid_from, load_version AS reference_version
   FROM ref.instruments_history WHERE is_current;
