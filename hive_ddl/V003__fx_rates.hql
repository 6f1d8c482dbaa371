-- FX rates to USD from the vendor file drop. Each load is a partition; ref.fx_rates shows the
-- latest good load, ref.fx_rates_history every fixing ever loaded (for backfills as of event time).
CREATE TABLE IF NOT EXISTS ref.fx_rates_loads (
  currency STRING COMMENT 'ISO 4217',
  usd_per_unit DOUBLE COMMENT 'USD for one unit of currency',
  as_of TIMESTAMP COMMENT 'when the vendor fixed the rate',
  source STRING,
  load_version BIGINT
) USING parquet PARTITIONED BY (load_version)
COMMENT 'Every load of FX rates; read it through the views';

CREATE VIEW IF NOT EXISTS ref.fx_rates
COMMENT 'Latest good FX fixing per currency'
AS SELECT currency, usd_per_unit, as_of, source, load_version FROM ref.fx_rates_loads WHERE load_version = -1;

CREATE VIEW IF NOT EXISTS ref.fx_rates_history
COMMENT 'Every FX fixing loaded, one row per currency and as_of'
AS SELECT currency, usd_per_unit, as_of, max(load_version) AS load_version
   FROM ref.fx_rates_loads GROUP BY currency, usd_per_unit, as_of;
