-- Enrichment of forward-filled events (each micro-batch of the stream, each chunk of a backfill).
--
-- `filled_events` is the batch (one row per instrument and event time, fields filled, with
-- per-field *_as_of times, the batch_id and the processed_time). Per-batch values belong in columns:
-- a literal here (current_timestamp(), a batch number) changes Spark's generated code every batch,
-- which is then compiled and optimised again each time (docs/performance.md).
-- `ref_instruments` and `ref_fx_rates` are the Hive reference views ref.instruments and ref.fx_rates
-- as small broadcast tables, read again whenever a refresh swaps in a new load (the stream checks every
-- few seconds and restarts its query with the new tables).
-- The result must have the columns of tickflow.md.EnrichedEvent (schemas/); the app checks that at
-- start-up and refuses to start otherwise. Unknown instruments are kept (LEFT JOIN) and flagged.
-- Each reference row is in force from `in_force_from` (inclusive) until `in_force_to` (exclusive),
-- NULL meaning open-ended: the live stream's current views are open on both sides, so every event
-- joins them; a backfill binds the SCD2 history, so each event joins the row of its own time.
SELECT
  f.instrument_id,
  f.event_time,
  f.event_count,
  f.bid_price, f.bid_size, f.ask_price, f.ask_size,
  f.last_price, f.close_price, f.reference_price,
  f.trade_id, f.trade_price, f.trade_size, f.trade_side, f.cancelled_trade_id,
  f.bid_price_as_of, f.bid_size_as_of, f.ask_price_as_of, f.ask_size_as_of,
  f.last_price_as_of, f.close_price_as_of, f.reference_price_as_of,
  f.trade_id_as_of, f.trade_price_as_of, f.trade_size_as_of, f.trade_side_as_of, f.cancelled_trade_id_as_of,
  i.instrument_id IS NOT NULL                                   AS enriched,
  i.symbol,
  i.name                                                        AS instrument_name,
  i.exchange,
  i.currency,
  i.asset_class,
  i.sector,
  i.lot_size,
  i.tick_size,
  i.reference_version,
  (f.bid_price + f.ask_price) / 2                               AS mid,
  f.ask_price - f.bid_price                                     AS spread,
  (f.ask_price - f.bid_price) / ((f.bid_price + f.ask_price) / 2) * 10000 AS spread_bps,
  f.trade_price * f.trade_size                                  AS trade_notional,
  fx.usd_per_unit                                               AS fx_rate_usd,
  (f.bid_price + f.ask_price) / 2 * fx.usd_per_unit             AS mid_usd,
  f.last_price * fx.usd_per_unit                                AS last_price_usd,
  f.trade_price * f.trade_size * fx.usd_per_unit                AS trade_notional_usd,
  f.ingest_time,
  f.processed_time,
  f.batch_id
FROM filled_events f
LEFT JOIN ref_instruments i
  ON i.instrument_id = f.instrument_id
  AND (i.in_force_from IS NULL OR f.event_time >= i.in_force_from)
  AND (i.in_force_to IS NULL OR f.event_time < i.in_force_to)
LEFT JOIN ref_fx_rates fx
  ON fx.currency = i.currency
  AND (fx.in_force_from IS NULL OR f.event_time >= fx.in_force_from)
  AND (fx.in_force_to IS NULL OR f.event_time < fx.in_force_to)
