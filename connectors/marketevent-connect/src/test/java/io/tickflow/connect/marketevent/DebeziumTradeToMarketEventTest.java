package io.tickflow.connect.marketevent;

import static io.tickflow.connect.marketevent.DebeziumChanges.BOOKED_US;
import static io.tickflow.connect.marketevent.DebeziumChanges.COMMIT_US;
import static io.tickflow.connect.marketevent.DebeziumChanges.change;
import static io.tickflow.connect.marketevent.DebeziumChanges.row;
import static io.tickflow.connect.marketevent.DebeziumChanges.trade;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.source.SourceRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class DebeziumTradeToMarketEventTest {

    private DebeziumTradeToMarketEvent<SourceRecord> smt;

    @BeforeEach
    void configure() {
        smt = smt(Map.of("partitions", "12"));
    }

    @AfterEach
    void close() {
        smt.close();
    }

    private static DebeziumTradeToMarketEvent<SourceRecord> smt(Map<String, String> props) {
        DebeziumTradeToMarketEvent<SourceRecord> t = new DebeziumTradeToMarketEvent<>();
        t.configure(props);
        return t;
    }

    private static final List<String> NOT_TRADE_FIELDS = List.of("bid_price", "bid_size", "ask_price", "ask_size",
            "last_price", "close_price", "reference_price");

    private static void assertTradePrint(SourceRecord out, String eventId, String instrument, int partition,
                                         long sequence, double price, long size, String side) {
        assertNotNull(out);
        assertEquals("md.events", out.topic());
        assertEquals(partition, out.kafkaPartition());
        assertEquals(Schema.STRING_SCHEMA, out.keySchema());
        assertEquals(instrument, out.key());
        assertNull(out.timestamp(), "CreateTime must be the time of produce, as for the Python producers");
        assertEquals(MarketEventSchema.SCHEMA, out.valueSchema());
        Struct v = (Struct) out.value();
        v.validate();
        assertEquals(eventId, v.get("event_id"));
        assertEquals(instrument, v.get("instrument_id"));
        assertEquals("trades", v.get("source"));
        assertEquals(BOOKED_US, v.get("event_time"));
        assertEquals(sequence, v.get("sequence"));
        assertEquals(eventId.substring(0, eventId.indexOf('#')), v.get("trade_id"));
        assertEquals(price, v.get("trade_price"));
        assertEquals(size, v.get("trade_size"));
        assertEquals(side, v.get("trade_side"));
        for (String f : NOT_TRADE_FIELDS) {
            assertNull(v.get(f), f);
        }
        // the source offset stays, so Connect commits the LSN of a published change
        assertEquals(Map.of("lsn", 24023128L, "txId", 771L), out.sourceOffset());
        assertEquals(Map.of("server", "tickflow.trades"), out.sourcePartition());
    }

    @Test
    void insertIsATradePrint() {
        SourceRecord out = smt.apply(change("c", null, trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 1, 77)));
        assertTradePrint(out, "B-1001#v1", "XNAS:AAPL", 8, 77, 189.25, 300, "sell");
    }

    @Test
    void snapshotReadIsATradePrint() {
        SourceRecord out = smt.apply(change("r", null, trade("B-1002", "XNYS:JPM", 151.5, 100, "buy", 3, 80)));
        assertTradePrint(out, "B-1002#v3", "XNYS:JPM", 4, 80, 151.5, 100, "buy");
    }

    @Test
    void updateIsACorrectionWithTheNewVersionAndSequenceAndTheBookingTime() {
        SourceRecord out = smt.apply(change("u", trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 1, 77),
                trade("B-1001", "XNAS:AAPL", 189.20, 250, "sell", 2, 95)));
        assertTradePrint(out, "B-1001#v2", "XNAS:AAPL", 8, 95, 189.20, 250, "sell");
    }

    @Test
    void updateWithoutTheOldRowIsTakenAsACorrection() {
        // REPLICA IDENTITY DEFAULT: Debezium sends no before image
        SourceRecord out = smt.apply(change("u", null, trade("B-1001", "XNAS:AAPL", 189.20, 250, "sell", 2, 95)));
        assertTradePrint(out, "B-1001#v2", "XNAS:AAPL", 8, 95, 189.20, 250, "sell");
    }

    @Test
    void correctionMovingTheTradeGoesToTheNewInstrumentsKeyAndPartition() {
        SourceRecord out = smt.apply(change("u", trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 1, 77),
                trade("B-1001", "XNAS:MSFT", 189.25, 300, "sell", 2, 96)));
        assertTradePrint(out, "B-1001#v2", "XNAS:MSFT", 11, 96, 189.25, 300, "sell");
    }

    @Test
    void updateChangingNoMarketFieldIsDropped() {
        assertNull(smt.apply(change("u", trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 1, 77),
                trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 2, 97))));
    }

    @Test
    void correctionWithoutANewVersionFailsBecauseItsEventIdWouldRepeat() {
        DataException e = assertThrows(DataException.class, () -> smt.apply(change("u",
                trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 1, 77),
                trade("B-1001", "XNAS:AAPL", 189.30, 300, "sell", 1, 98))));
        assertTrue(e.getMessage().contains("B-1001") && e.getMessage().contains("increment version"), e.getMessage());
    }

    private static final List<String> TRADE_FIELDS = List.of("trade_id", "trade_price", "trade_size", "trade_side");

    /** Debezium's source.lsn of every change in {@link DebeziumChanges#source}. */
    private static final long LSN = 24023128L;

    private static void assertCancel(SourceRecord out, String tradeId, String instrument, int partition,
                                     long eventTime, long sequence) {
        assertNotNull(out);
        assertEquals("md.events", out.topic());
        assertEquals(partition, out.kafkaPartition());
        assertEquals(Schema.STRING_SCHEMA, out.keySchema());
        assertEquals(instrument, out.key());
        assertNull(out.timestamp());
        assertEquals(MarketEventSchema.SCHEMA, out.valueSchema());
        Struct v = (Struct) out.value();
        v.validate();
        assertEquals(tradeId + "#cancel", v.get("event_id"));
        assertEquals(instrument, v.get("instrument_id"));
        assertEquals("trades", v.get("source"));
        assertEquals(eventTime, v.get("event_time"));
        assertEquals(sequence, v.get("sequence"));
        assertEquals(tradeId, v.get("cancelled_trade_id"));
        // a cancel sets no other trade field (the .avsc), so the fill never takes the cancelled trade as the last one
        for (String f : TRADE_FIELDS) {
            assertNull(v.get(f), f);
        }
        for (String f : NOT_TRADE_FIELDS) {
            assertNull(v.get(f), f);
        }
        assertEquals(Map.of("lsn", 24023128L, "txId", 771L), out.sourceOffset());
        assertEquals(Map.of("server", "tickflow.trades"), out.sourcePartition());
    }

    @Test
    void deleteIsACancelAtTheCommitTimeKeyedByTheDeletedRowsInstrument() {
        SourceRecord out = smt.apply(change("d", trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 2, 95), null));
        assertCancel(out, "B-1001", "XNAS:AAPL", 8, COMMIT_US, LSN);
        assertEquals(BOOKED_US + 2_500L, COMMIT_US, "event_time is the delete's commit time, not the booking time");

        SourceRecord jpm = smt.apply(change("d", trade("B-1002", "XNYS:JPM", 151.5, 100, "buy", 1, 80), null));
        assertCancel(jpm, "B-1002", "XNYS:JPM", 4, COMMIT_US, LSN);
    }

    @Test
    void aReplayedDeleteIsTheSameCancel() {
        Struct before = trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 2, 95);
        assertEquals(smt.apply(change("d", before, null)).value(), smt.apply(change("d", before, null)).value());
    }

    @Test
    void cancelFallsBackToTsMsAndToTheDeletedRowsChangeSeq() {
        SourceRecord rec = change("d", trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 2, 95), null);
        ((Struct) rec.value()).getStruct("source").put("ts_us", null).put("lsn", null);
        assertCancel(smt.apply(rec), "B-1001", "XNAS:AAPL", 8, COMMIT_US / 1000 * 1000, 95);
    }

    @Test
    void cancelWithoutACommitTimeFails() {
        TradeRow row = new TradeRow("B-1001", "XNAS:AAPL", BOOKED_US, 189.25, 300, "sell", 2, 95);
        DataException e = assertThrows(DataException.class, () -> MarketEventSchema.cancel(row, null, LSN));
        assertEquals("the delete of trade B-1001 has no commit time (source.ts_us or source.ts_ms of the change "
                + "event), which its cancel needs as event_time", e.getMessage());
    }

    @Test
    void deleteWithoutTheOldRowAsksForReplicaIdentityFull() {
        // REPLICA IDENTITY DEFAULT: the old row is missing, only Debezium's key names the trade
        SourceRecord noRow = change("d", null, null);
        SourceRecord keyed = noRow.newRecord(noRow.topic(), null, DebeziumChanges.KEY,
                new Struct(DebeziumChanges.KEY).put("trade_id", "B-1001"), noRow.valueSchema(), noRow.value(), null);
        DataException e = assertThrows(DataException.class, () -> smt.apply(keyed));
        assertEquals("the delete of trade B-1001 in trade_capture.trades carries no old row with its instrument_id, "
                + "so its cancel has no key; set REPLICA IDENTITY FULL on the table (ALTER TABLE trade_capture.trades "
                + "REPLICA IDENTITY FULL), then skip this one delete, whose WAL record stays without the row, by "
                + "restarting the task once with errors.tolerance=all", e.getMessage());

        // or an old row holding only the key columns
        DataException partial = assertThrows(DataException.class,
                () -> smt.apply(change("d", trade("B-1002", null, 1.0, 1, "buy", 1, 1), null)));
        assertTrue(partial.getMessage().startsWith("the delete of trade B-1002 in trade_capture.trades carries no old row")
                && partial.getMessage().contains("REPLICA IDENTITY FULL"), partial.getMessage());
    }

    @Test
    void cancelCarriesTheCommitTimeHeaderToo() {
        DebeziumTradeToMarketEvent<SourceRecord> withHeader = smt(Map.of("partitions", "12",
                "commit.time.header", "tickflow.commit_us"));
        SourceRecord out = withHeader.apply(change("d", trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 2, 95), null));
        assertEquals(COMMIT_US, out.headers().lastWithName("tickflow.commit_us").value());
    }

    @Test
    void tombstoneIsDropped() {
        assertNull(smt.apply(DebeziumChanges.tombstone("B-1001")));
    }

    @Test
    void truncateIsDropped() {
        assertNull(smt.apply(change("t", null, null)));
    }

    @Test
    void otherTablesAndHeartbeatsAreDropped() {
        assertNull(smt.apply(change("c", null, trade("B-1", "XNAS:AAPL", 1.0, 1, "buy", 1, 1), "settlements",
                DebeziumChanges.ROW)));
        Schema heartbeat = SchemaBuilder.struct().name("io.debezium.connector.common.Heartbeat")
                .field("ts_ms", Schema.INT64_SCHEMA).build();
        SourceRecord beat = new SourceRecord(Map.of("server", "tickflow.trades"), Map.of("lsn", 1L),
                "__debezium-heartbeat.tickflow.trades", null, null, null, heartbeat,
                new Struct(heartbeat).put("ts_ms", 1L));
        assertNull(smt.apply(beat));
    }

    @Test
    void unknownOpFails() {
        DataException e = assertThrows(DataException.class,
                () -> smt.apply(change("x", null, trade("B-1", "XNAS:AAPL", 1.0, 1, "buy", 1, 1))));
        assertTrue(e.getMessage().contains("'x'"), e.getMessage());
    }

    @Test
    void missingInstrumentFailsNamingTradeAndColumn() {
        DataException e = assertThrows(DataException.class,
                () -> smt.apply(change("c", null, trade("B-7", null, 1.0, 1, "buy", 1, 1))));
        assertTrue(e.getMessage().contains("B-7") && e.getMessage().contains("instrument_id"), e.getMessage());
    }

    @Test
    void unknownSideFails() {
        DataException e = assertThrows(DataException.class,
                () -> smt.apply(change("c", null, trade("B-8", "XNAS:AAPL", 1.0, 1, "short", 1, 1))));
        assertTrue(e.getMessage().contains("'short'") && e.getMessage().contains("buy or sell"), e.getMessage());
    }

    @Test
    void decimalPriceAsksForDecimalHandlingModeDouble() {
        Schema decimal = org.apache.kafka.connect.data.Decimal.schema(4);
        Schema rowSchema = row(DebeziumChanges.ZONED_TIMESTAMP, decimal);
        Struct after = new Struct(rowSchema).put("trade_id", "B-9").put("instrument_id", "XNAS:AAPL")
                .put("booked_at", DebeziumChanges.BOOKED).put("price", new java.math.BigDecimal("189.2500"))
                .put("size", 1L).put("side", "buy").put("version", 1).put("change_seq", 1L);
        DataException e = assertThrows(DataException.class, () -> smt.apply(change("c", null, after)));
        assertTrue(e.getMessage().contains("decimal.handling.mode=double"), e.getMessage());
    }

    @Test
    void connectMillisTimestampIsRefusedAndMicroTimestampIsKept() {
        Schema connectTs = org.apache.kafka.connect.data.Timestamp.SCHEMA;
        Struct millis = new Struct(row(connectTs, Schema.FLOAT64_SCHEMA)).put("trade_id", "B-10")
                .put("instrument_id", "XNAS:AAPL").put("booked_at", new java.util.Date(BOOKED_US / 1000))
                .put("price", 1.0).put("size", 1L).put("side", "buy").put("version", 1).put("change_seq", 1L);
        DataException e = assertThrows(DataException.class, () -> smt.apply(change("c", null, millis)));
        assertTrue(e.getMessage().contains("time.precision.mode=connect"), e.getMessage());

        Schema microTs = SchemaBuilder.int64().name("io.debezium.time.MicroTimestamp").version(1).build();
        Struct micros = new Struct(row(microTs, Schema.FLOAT64_SCHEMA)).put("trade_id", "B-11")
                .put("instrument_id", "XNAS:AAPL").put("booked_at", BOOKED_US)
                .put("price", 1.0).put("size", 1L).put("side", "buy").put("version", 1).put("change_seq", 1L);
        assertEquals(BOOKED_US, ((Struct) smt.apply(change("c", null, micros)).value()).get("event_time"));
    }

    @Test
    void zonedTimestampWithAnOffsetOrFewerDigitsIsTheSameInstant() {
        Struct row = trade("B-12", "XNAS:AAPL", 1.0, 1, "buy", 1, 1).put("booked_at", "2025-11-30T01:00:00.1234+01:00");
        assertEquals(1_764_460_800_123_400L, ((Struct) smt.apply(change("c", null, row)).value()).get("event_time"));
    }

    @Test
    void commitTimeHeaderIsOptional() {
        SourceRecord plain = smt.apply(change("c", null, trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 1, 77)));
        assertTrue(plain.headers().isEmpty());

        DebeziumTradeToMarketEvent<SourceRecord> withHeader = smt(Map.of("partitions", "12",
                "commit.time.header", "tickflow.commit_us"));
        SourceRecord out = withHeader.apply(change("c", null, trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 1, 77)));
        Header h = out.headers().lastWithName("tickflow.commit_us");
        assertEquals(COMMIT_US, h.value());
    }

    @Test
    void topicPartitionCountAndTableAreConfigurable() {
        Map<String, String> props = new HashMap<>(Map.of("partitions", "3", "topic", "md.events.test",
                "table", "booking.fills"));
        DebeziumTradeToMarketEvent<SourceRecord> other = smt(props);
        Struct after = trade("B-1", "XNAS:AAPL", 1.0, 1, "buy", 1, 1);
        assertNull(other.apply(change("c", null, after)), "trade_capture.trades is not the configured table");
        SourceRecord rec = change("c", null, after);
        ((Struct) rec.value()).getStruct("source").put("schema", "booking").put("table", "fills");
        SourceRecord out = other.apply(rec);
        assertEquals("md.events.test", out.topic());
        assertEquals(2, out.kafkaPartition());
    }

    @Test
    void partitionsIsRequiredAndTableMustBeQualified() {
        assertThrows(ConfigException.class, () -> smt(Map.of()));
        assertThrows(ConfigException.class, () -> smt(Map.of("partitions", "0")));
        assertThrows(ConfigException.class, () -> smt(Map.of("partitions", "12", "table", "trades")));
    }

    @Test
    void connectSchemaHasTheAvscFieldNamesInOrder() {
        List<String> avsc = DebeziumChanges.marketEvent().getFields().stream().map(org.apache.avro.Schema.Field::name)
                .collect(Collectors.toList());
        List<String> connect = MarketEventSchema.SCHEMA.fields().stream().map(org.apache.kafka.connect.data.Field::name)
                .collect(Collectors.toList());
        assertEquals(avsc, connect);
        assertEquals(DebeziumChanges.marketEvent().getFullName(), MarketEventSchema.NAME);
    }

    /** The version the converter's error names is the one whose fields the .avsc documents as "Added in vN". */
    @Test
    void connectSchemaVersionIsTheAvscsLatestAddition() {
        java.util.regex.Pattern added = java.util.regex.Pattern.compile("Added in v(\\d+)");
        int latest = DebeziumChanges.marketEvent().getFields().stream()
                .map(f -> f.doc() == null ? null : added.matcher(f.doc()))
                .filter(m -> m != null && m.find())
                .mapToInt(m -> Integer.parseInt(m.group(1)))
                .max().orElse(1);
        assertEquals(latest, MarketEventSchema.VERSION);
    }
}
