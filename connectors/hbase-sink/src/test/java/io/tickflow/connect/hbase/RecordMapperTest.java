package io.tickflow.connect.hbase;

import static io.tickflow.connect.hbase.TestRecords.INSTRUMENT;
import static io.tickflow.connect.hbase.TestRecords.T0;
import static io.tickflow.connect.hbase.TestRecords.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Set;
import java.util.stream.Collectors;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.hadoop.hbase.Cell;
import org.apache.hadoop.hbase.CellUtil;
import org.apache.hadoop.hbase.client.Put;
import org.apache.hadoop.hbase.util.Bytes;
import org.junit.jupiter.api.Test;

class RecordMapperTest {

    private static final Schema SCHEMA = TestRecords.schema();
    private static final int ID = 5;
    private final RecordMapper mapper = new RecordMapper();

    /** Maps a record the way the task does: decoded for latest and the row key, its framed bytes for history. */
    private RecordMapper.Mapped map(GenericRecord r) {
        return mapper.map(r, TestRecords.framed(ID, r));
    }

    private static HCell cell(List<HCell> cells, String family, String qualifier) {
        List<HCell> found = cells.stream()
                .filter(c -> c.family().equals(family) && c.qualifier().equals(qualifier))
                .collect(Collectors.toList());
        assertTrue(found.size() <= 1, "more than one cell for " + family + ":" + qualifier);
        return found.isEmpty() ? null : found.get(0);
    }

    private static Set<String> columns(List<HCell> cells, String family) {
        return cells.stream().filter(c -> c.family().equals(family)).map(HCell::qualifier)
                .collect(Collectors.toSet());
    }

    @Test
    void filledFieldsGoToFamilyFWithTheirAsOfTimeInMillis() {
        GenericRecord r = TestRecords.full(SCHEMA, INSTRUMENT, T0);
        r.put("close_price", 99.0);
        r.put("close_price_as_of", 1_999L); // 1.999 ms after the epoch floors to 1 ms
        RecordMapper.Mapped m = map(r);

        assertArrayEquals(INSTRUMENT.getBytes(StandardCharsets.UTF_8), m.latestRow());
        HCell bid = cell(m.latestCells(), "f", "bid_price");
        assertNotNull(bid);
        assertEquals((T0 - 1_500) / 1000, bid.timestamp());
        assertEquals(1_699_999_999_998L, bid.timestamp()); // ...998.5 ms floors, never rounds up
        assertEquals(T0 / 1000, cell(m.latestCells(), "f", "ask_price").timestamp());
        assertEquals((T0 - 5_000_000) / 1000, cell(m.latestCells(), "f", "last_price").timestamp());
        assertEquals(1L, cell(m.latestCells(), "f", "close_price").timestamp());
        assertEquals(Set.of("bid_price", "bid_size", "ask_price", "ask_size", "last_price", "close_price",
                "trade_id", "trade_price", "trade_size", "trade_side"), columns(m.latestCells(), "f"));
        // the as-of times are the cell timestamps, never columns of md:latest
        assertTrue(m.latestCells().stream().noneMatch(c -> c.qualifier().endsWith("_as_of")));
    }

    @Test
    void nullFieldsWriteNothingInLatest() {
        RecordMapper.Mapped m = map(TestRecords.minimal(SCHEMA, INSTRUMENT, T0));
        assertTrue(columns(m.latestCells(), "f").isEmpty());
        assertEquals(Set.of("instrument_id", "event_time", "event_count", "enriched", "ingest_time",
                "processed_time", "batch_id"), columns(m.latestCells(), "e"));
        assertNull(cell(m.latestCells(), "f", "bid_price"));
    }

    @Test
    void aClearedRegisterIsAnEmptyCellAtItsAsOfTime() {
        long cancelAt = T0 + 1_999; // floors to the same ms as T0 + 1 ms
        GenericRecord r = TestRecords.cancel(SCHEMA, INSTRUMENT, cancelAt, "T-1");
        RecordMapper.Mapped m = map(r);

        // trade_price null, trade_price_as_of set: the empty cell at the as-of (ms), not "nothing"
        assertEquals(new HCell("f", "trade_price", cancelAt / 1000, new byte[0]),
                cell(m.latestCells(), "f", "trade_price"));
        for (String trade : List.of("trade_id", "trade_price", "trade_size", "trade_side")) {
            HCell c = cell(m.latestCells(), "f", trade);
            assertNotNull(c, trade + " is cleared, so it has a cell");
            assertEquals(0, c.value().length, trade);
            assertEquals((T0 + 1_000) / 1000, c.timestamp(), trade);
        }
        // the cancel itself is an ordinary filled value, dated by its own as-of
        assertEquals(new HCell("f", "cancelled_trade_id", cancelAt / 1000, Bytes.toBytes("T-1")),
                cell(m.latestCells(), "f", "cancelled_trade_id"));
        // a register never set (value and as-of null) still writes nothing, and a value is still a value
        assertNull(cell(m.latestCells(), "f", "ask_price"));
        assertArrayEquals(Bytes.toBytes(101.5), cell(m.latestCells(), "f", "bid_price").value());
        // family e keeps its rule: a null writes nothing
        assertNull(cell(m.latestCells(), "e", "trade_notional"));
        // the Put carries the empty value as it is
        LatestBatch batch = new LatestBatch();
        batch.add(m);
        Cell put = cells(batch.toPuts().get(0)).stream()
                .filter(c -> Bytes.toString(CellUtil.cloneQualifier(c)).equals("trade_price"))
                .findFirst().orElseThrow();
        assertEquals(0, put.getValueLength());
        assertEquals(cancelAt / 1000, put.getTimestamp());
    }

    @Test
    void aClearedRegisterCompetesByTimestampLikeAValue() {
        GenericRecord trade = TestRecords.full(SCHEMA, INSTRUMENT, T0); // trade T-1 at T0
        GenericRecord cancel = TestRecords.cancel(SCHEMA, INSTRUMENT, T0 + 5_000, "T-1");
        GenericRecord lateOlder = TestRecords.full(SCHEMA, INSTRUMENT, T0 - 9_000); // replayed, older than both
        lateOlder.put("trade_price", 99.0);
        lateOlder.put("trade_price_as_of", T0 - 9_000);

        LatestBatch cleared = new LatestBatch();
        List.of(map(trade), map(cancel), map(lateOlder)).forEach(cleared::add);
        assertEquals(new HCell("f", "trade_price", (T0 + 5_000) / 1000, new byte[0]),
                cell(cleared.rows().get(INSTRUMENT), "f", "trade_price"),
                "the cancel replaces the trade; a late older trade does not replace the cancel");

        GenericRecord next = TestRecords.full(SCHEMA, INSTRUMENT, T0 + 8_000);
        next.put("trade_price", 102.0);
        next.put("trade_price_as_of", T0 + 8_000);
        cleared.add(map(next));
        assertEquals(new HCell("f", "trade_price", (T0 + 8_000) / 1000, Bytes.toBytes(102.0)),
                cell(cleared.rows().get(INSTRUMENT), "f", "trade_price"), "a later trade replaces the empty cell");
    }

    @Test
    void aV1RecordStillMapsAsBefore() {
        Schema v1 = TestRecords.v1Schema();
        assertNull(v1.getField("cancelled_trade_id"));
        GenericRecord r = TestRecords.full(v1, INSTRUMENT, T0);
        RecordMapper.Mapped m = mapper.map(r, TestRecords.framed(ID - 1, r));

        assertEquals(Set.of("bid_price", "bid_size", "ask_price", "ask_size", "last_price", "trade_id",
                "trade_price", "trade_size", "trade_side"), columns(m.latestCells(), "f"));
        assertEquals(new HCell("f", "trade_price", T0 / 1000, Bytes.toBytes(101.7)),
                cell(m.latestCells(), "f", "trade_price"));
        assertEquals(new HCell("f", "bid_price", (T0 - 1_500) / 1000, Bytes.toBytes(101.5)),
                cell(m.latestCells(), "f", "bid_price"));
        assertTrue(m.latestCells().stream().noneMatch(c -> c.value().length == 0), "v1 never clears a register");
        // cell for cell what the same values give under v2, where the new fields are simply null
        GenericRecord same = TestRecords.full(SCHEMA, INSTRUMENT, T0);
        assertEquals(Set.copyOf(map(same).latestCells()), Set.copyOf(m.latestCells()));
        // a v1 record with nulls writes no f cell, as before
        assertTrue(columns(mapper.map(TestRecords.minimal(v1, INSTRUMENT, T0), new byte[] {0}).latestCells(), "f")
                .isEmpty());
        // its history cell is its own bytes, read back with its own (v1) writer schema
        GenericRecord back = new ConfluentAvroDecoder(id -> v1).decode(m.historyCell().value());
        assertEquals(r.toString(), back.toString());
    }

    @Test
    void otherFieldsGoToFamilyEAtTheEventTimeInMillis() {
        RecordMapper.Mapped m = map(TestRecords.full(SCHEMA, INSTRUMENT, T0 + 999));
        long eventMs = T0 / 1000;
        assertEquals(Set.of("instrument_id", "event_time", "event_count", "enriched", "symbol", "currency",
                "lot_size", "tick_size", "mid", "ingest_time", "processed_time", "batch_id"),
                columns(m.latestCells(), "e"));
        for (HCell c : m.latestCells()) {
            if (c.family().equals("e")) {
                assertEquals(eventMs, c.timestamp(), c.toString());
            }
        }
        // as tickflow.hbase.layout (the contract) has it: the row key and the event time are columns of e too
        assertArrayEquals(Bytes.toBytes(INSTRUMENT), cell(m.latestCells(), "e", "instrument_id").value());
        assertArrayEquals(Bytes.toBytes(T0 + 999), cell(m.latestCells(), "e", "event_time").value());
    }

    @Test
    void historyRowKeyIsPinnedAndSortsNewestFirst() {
        RecordMapper.Mapped older = map(TestRecords.full(SCHEMA, INSTRUMENT, T0));
        RecordMapper.Mapped newer = map(TestRecords.full(SCHEMA, INSTRUMENT, T0 + 1));

        // "XNAS:AAPL", 0x00, Long.MAX_VALUE - 1_700_000_000_000_000 as 8 big-endian bytes
        assertArrayEquals(hex("584e41533a4141504c 00 7ff9f5dbe7e1bfff"), older.historyRow());
        assertArrayEquals(hex("584e41533a4141504c 00 7ff9f5dbe7e1bffe"), newer.historyRow());
        assertArrayEquals(older.historyRow(), RecordMapper.historyRowKey(INSTRUMENT, T0));

        assertTrue(Arrays.compareUnsigned(newer.historyRow(), older.historyRow()) < 0);
        assertTrue(Bytes.compareTo(newer.historyRow(), older.historyRow()) < 0, "newest first in HBase order");
        // an instrument's rows never interleave with a longer id sharing its prefix
        byte[] otherInstrument = RecordMapper.historyRowKey(INSTRUMENT + "X", T0);
        assertTrue(Bytes.compareTo(older.historyRow(), otherInstrument) < 0);
    }

    @Test
    void historyIsOneCellHoldingTheValueBytesAsReceivedAtTheEventTime() {
        GenericRecord r = TestRecords.full(SCHEMA, INSTRUMENT, T0 + 999);
        byte[] value = TestRecords.framed(ID, r);
        byte[] sent = value.clone();
        RecordMapper.Mapped m = mapper.map(r, value);

        // h:r, the event time floored to ms (as every cell timestamp), the bytes exactly as they came from Kafka
        assertEquals(new HCell("h", "r", T0 / 1000, sent), m.historyCell());
        Put put = LatestBatch.historyPut(m);
        assertArrayEquals(RecordMapper.historyRowKey(INSTRUMENT, T0 + 999), put.getRow());
        List<Cell> cells = cells(put);
        assertEquals(1, cells.size(), "one cell per record, whatever the number of fields");
        Cell c = cells.get(0);
        assertEquals("h", Bytes.toString(CellUtil.cloneFamily(c)));
        assertEquals("r", Bytes.toString(CellUtil.cloneQualifier(c)));
        assertEquals(T0 / 1000, c.getTimestamp());
        assertArrayEquals(sent, CellUtil.cloneValue(c));
        assertArrayEquals(sent, value, "the mapper never changes the bytes it is given");

        // nothing is re-encoded: whatever bytes came with the record are the ones stored
        byte[] asWritten = TestRecords.hex("00 0000002a 0102 03");
        Put asIs = LatestBatch.historyPut(mapper.map(r, asWritten));
        assertArrayEquals(asWritten, CellUtil.cloneValue(cells(asIs).get(0)));
    }

    @Test
    void theHistoryCellDecodesBackToTheRecord() {
        GenericRecord r = TestRecords.full(SCHEMA, INSTRUMENT, T0);
        RecordMapper.Mapped m = map(r);
        ConfluentAvroDecoder decoder = new ConfluentAvroDecoder(id -> {
            assertEquals(ID, id);
            return SCHEMA;
        });
        assertEquals(r.toString(), decoder.decode(m.historyCell().value()).toString());
        RecordMapper.Mapped minimal = map(TestRecords.minimal(SCHEMA, INSTRUMENT, T0));
        GenericRecord back = decoder.decode(minimal.historyCell().value());
        assertNull(back.get("bid_price"), "a null field stays null: nothing is invented");
    }

    @Test
    void valueEncodingsArePinned() {
        GenericRecord r = TestRecords.full(SCHEMA, INSTRUMENT, T0);
        r.put("enriched", false);
        r.put("tick_size", -0.25);
        RecordMapper.Mapped m = map(r);
        List<HCell> l = m.latestCells();

        assertArrayEquals(hex("4059600000000000"), cell(l, "f", "bid_price").value());      // double 101.5
        assertArrayEquals(hex("bfd0000000000000"), cell(l, "e", "tick_size").value());      // double -0.25
        assertArrayEquals(hex("000000000000012c"), cell(l, "f", "bid_size").value());       // long 300
        assertArrayEquals(hex("0000000000000003"), cell(l, "e", "event_count").value());    // int 3, widened
        assertArrayEquals(hex("00"), cell(l, "e", "enriched").value());                     // false
        assertArrayEquals(hex("414150 4c"), cell(l, "e", "symbol").value());                // "AAPL"
        assertArrayEquals(hex("73656c6c"), cell(l, "f", "trade_side").value());             // enum sell
        assertArrayEquals(hex("00060a24181e4000"), cell(l, "e", "event_time").value());     // timestamp-micros

        assertArrayEquals(hex("ff"), RecordMapper.encode(Boolean.TRUE));
        // the same bytes as HBase's own Bytes.toBytes
        assertArrayEquals(Bytes.toBytes(101.5), RecordMapper.encode(101.5));
        assertArrayEquals(Bytes.toBytes(300L), RecordMapper.encode(300L));
        assertArrayEquals(Bytes.toBytes(3L), RecordMapper.encode(3));
        assertArrayEquals(Bytes.toBytes(true), RecordMapper.encode(true));
        assertArrayEquals(Bytes.toBytes(false), RecordMapper.encode(false));
        assertArrayEquals(Bytes.toBytes("AAPL"), RecordMapper.encode(new org.apache.avro.util.Utf8("AAPL")));
        assertArrayEquals(Bytes.toBytes("été"), RecordMapper.encode("été"));
    }

    @Test
    void aLaterSchemaVersionsExtraFieldsFlowThrough() {
        Schema v2 = TestRecords.schemaWithExtraFields(
                "venue", "\"string\"",
                "imbalance", "\"double\"",
                "imbalance_as_of", "{\"type\": \"long\", \"logicalType\": \"timestamp-micros\"}",
                "unused", "\"long\"");
        GenericRecord r = TestRecords.full(v2, INSTRUMENT, T0);
        r.put("venue", "XNAS-1");
        r.put("imbalance", 0.5);
        r.put("imbalance_as_of", T0 - 7_000);
        RecordMapper.Mapped m = mapper.map(r, TestRecords.framed(ID + 1, r));

        HCell venue = cell(m.latestCells(), "e", "venue");
        assertNotNull(venue);
        assertEquals(T0 / 1000, venue.timestamp());
        assertArrayEquals(Bytes.toBytes("XNAS-1"), venue.value());
        HCell imbalance = cell(m.latestCells(), "f", "imbalance");
        assertNotNull(imbalance, "a new field with an _as_of partner is a filled field");
        assertEquals((T0 - 7_000) / 1000, imbalance.timestamp());
        assertNull(cell(m.latestCells(), "e", "imbalance_as_of"));
        assertNull(cell(m.latestCells(), "e", "unused"));
        // history keeps the v2 bytes: read with the v2 writer schema, the new fields are there
        GenericRecord back = new ConfluentAvroDecoder(id -> v2).decode(m.historyCell().value());
        assertEquals("XNAS-1", back.get("venue").toString());
        assertEquals(T0 - 7_000, back.get("imbalance_as_of"));
        assertNull(back.get("unused"));
    }

    @Test
    void theSameRecordAlwaysGivesTheSameCells() {
        GenericRecord r = TestRecords.full(SCHEMA, INSTRUMENT, T0);
        RecordMapper.Mapped a = map(r);
        GenericRecord again = TestRecords.full(SCHEMA, INSTRUMENT, T0);
        RecordMapper.Mapped b = new RecordMapper().map(again, TestRecords.framed(ID, again));
        assertEquals(a.latestCells(), b.latestCells());
        assertEquals(a.historyCell(), b.historyCell());
        assertArrayEquals(a.historyRow(), b.historyRow());
        assertArrayEquals(a.latestRow(), b.latestRow());
        // and the Puts built from them are cell-for-cell equal
        assertEquals(cells(LatestBatch.historyPut(a)), cells(LatestBatch.historyPut(b)));
    }

    @Test
    void aFilledValueWithoutItsAsOfTimeIsDatedAtTheEventTime() {
        GenericRecord r = TestRecords.minimal(SCHEMA, INSTRUMENT, T0);
        r.put("bid_price", 1.0);
        assertEquals(T0 / 1000, cell(map(r).latestCells(), "f", "bid_price").timestamp());
    }

    @Test
    void recordsThatBreakTheLayoutAreRejected() {
        GenericRecord nul = TestRecords.minimal(SCHEMA, "XNAS:\0AAPL", T0);
        RecordRejectedException e = assertThrows(RecordRejectedException.class, () -> map(nul));
        assertTrue(e.getMessage().contains("0x00"), e.getMessage());

        GenericRecord empty = TestRecords.minimal(SCHEMA, "", T0);
        assertThrows(RecordRejectedException.class, () -> map(empty));

        GenericRecord negative = TestRecords.minimal(SCHEMA, INSTRUMENT, -5L);
        e = assertThrows(RecordRejectedException.class, () -> map(negative));
        assertTrue(e.getMessage().contains("event_time"), e.getMessage());
    }

    @Test
    void conflationKeepsTheNewestCellPerColumnAndHistoryKeepsAll() {
        GenericRecord first = TestRecords.minimal(SCHEMA, INSTRUMENT, T0);
        first.put("bid_price", 100.0);
        first.put("bid_price_as_of", T0);
        GenericRecord second = TestRecords.minimal(SCHEMA, INSTRUMENT, T0 + 2_000);
        second.put("bid_price", 100.5);
        second.put("bid_price_as_of", T0 + 2_000);
        // arrives last but is older: its bid loses, its ask (the only one) is kept
        GenericRecord late = TestRecords.minimal(SCHEMA, INSTRUMENT, T0 - 3_000);
        late.put("bid_price", 99.0);
        late.put("bid_price_as_of", T0 - 3_000);
        late.put("ask_price", 101.0);
        late.put("ask_price_as_of", T0 - 3_000);
        // same as-of time as `second`, later in the batch: the tie goes to the later record
        GenericRecord tie = TestRecords.minimal(SCHEMA, INSTRUMENT, T0 + 2_000);
        tie.put("last_price", 7.0);
        tie.put("last_price_as_of", T0 + 2_000);
        tie.put("batch_id", 43L);
        GenericRecord other = TestRecords.minimal(SCHEMA, "XLON:VOD", T0);

        LatestBatch batch = new LatestBatch();
        List<RecordMapper.Mapped> all = List.of(map(first), map(second), map(late), map(tie), map(other));
        all.forEach(batch::add);

        Map<String, List<HCell>> rows = batch.rows();
        assertEquals(List.of(INSTRUMENT, "XLON:VOD"), List.copyOf(rows.keySet()));
        List<HCell> kept = rows.get(INSTRUMENT);
        assertEquals(new HCell("f", "bid_price", (T0 + 2_000) / 1000, Bytes.toBytes(100.5)),
                cell(kept, "f", "bid_price"));
        assertEquals(new HCell("f", "ask_price", (T0 - 3_000) / 1000, Bytes.toBytes(101.0)),
                cell(kept, "f", "ask_price"));
        assertEquals(new HCell("e", "event_time", (T0 + 2_000) / 1000, Bytes.toBytes(T0 + 2_000)),
                cell(kept, "e", "event_time"));
        assertArrayEquals(Bytes.toBytes(43L), cell(kept, "e", "batch_id").value(), "tie: later record wins");

        List<Put> puts = batch.toPuts();
        assertEquals(2, puts.size(), "one Put per instrument");
        assertArrayEquals(Bytes.toBytes(INSTRUMENT), puts.get(0).getRow());
        assertEquals(kept.size(), cells(puts.get(0)).size());
        for (Cell c : cells(puts.get(0))) {
            String column = Bytes.toString(CellUtil.cloneFamily(c)) + ":" + Bytes.toString(CellUtil.cloneQualifier(c));
            HCell expected = cell(kept, Bytes.toString(CellUtil.cloneFamily(c)),
                    Bytes.toString(CellUtil.cloneQualifier(c)));
            assertNotNull(expected, column);
            assertEquals(expected.timestamp(), c.getTimestamp(), column);
            assertArrayEquals(expected.value(), CellUtil.cloneValue(c), column);
        }

        // history: one row per record, all distinct keys except the two records at the same event time
        List<byte[]> historyRows = all.stream().map(RecordMapper.Mapped::historyRow).collect(Collectors.toList());
        assertEquals(5, historyRows.size());
        assertArrayEquals(historyRows.get(1), historyRows.get(3));
        assertFalse(Arrays.equals(historyRows.get(0), historyRows.get(1)));
    }

    private static List<Cell> cells(Put put) {
        NavigableMap<byte[], List<Cell>> map = put.getFamilyCellMap();
        return map.values().stream().flatMap(List::stream).collect(Collectors.toList());
    }

    @Test
    void enumAndUtf8ValuesFromTheDecoderEncodeLikeStrings() {
        Schema enumSchema = SCHEMA.getField("trade_side").schema().getTypes().get(1);
        assertArrayEquals(Bytes.toBytes("buy"), RecordMapper.encode(new GenericData.EnumSymbol(enumSchema, "buy")));
    }

    /**
     * The columns of md:latest for a record with every field set, family by family, exactly as
     * {@code tickflow.hbase.layout.EventLayout} (filled / extra) lists them for the same schema file:
     * the Python side is the contract the serving API and the reconciliation read with.
     */
    @Test
    void latestColumnsAreThoseOfThePythonLayout() {
        GenericRecord r = TestRecords.full(SCHEMA, INSTRUMENT, T0);
        for (Schema.Field f : SCHEMA.getFields()) {
            if (r.get(f.pos()) == null) {
                r.put(f.pos(), anyValue(f.schema()));
            }
        }
        RecordMapper.Mapped m = map(r);
        assertEquals(Set.of("bid_price", "bid_size", "ask_price", "ask_size", "last_price", "close_price",
                "reference_price", "trade_id", "trade_price", "trade_size", "trade_side", "cancelled_trade_id"),
                columns(m.latestCells(), "f"));
        assertEquals(Set.of("instrument_id", "event_time", "event_count", "enriched", "symbol", "instrument_name",
                "exchange", "currency", "asset_class", "sector", "lot_size", "tick_size", "reference_version", "mid",
                "spread", "spread_bps", "trade_notional", "fx_rate_usd", "mid_usd", "last_price_usd",
                "trade_notional_usd", "ingest_time", "processed_time", "batch_id"), columns(m.latestCells(), "e"));
        assertEquals(SCHEMA.getFields().size() - 12, m.latestCells().size(), "every as-of field is left out");
        assertEquals(new HCell("h", "r", T0 / 1000, TestRecords.framed(ID, r)), m.historyCell(),
                "history holds the whole record in one cell");
    }

    private static Object anyValue(Schema schema) {
        if (schema.getType() == Schema.Type.UNION) {
            return anyValue(schema.getTypes().stream().filter(t -> t.getType() != Schema.Type.NULL).findFirst()
                    .orElseThrow());
        }
        switch (schema.getType()) {
            case STRING:
                return "x";
            case LONG:
                return 7L;
            case INT:
                return 7;
            case DOUBLE:
                return 7.5;
            case BOOLEAN:
                return true;
            case ENUM:
                return new GenericData.EnumSymbol(schema, schema.getEnumSymbols().get(0));
            default:
                throw new IllegalArgumentException("no test value for " + schema);
        }
    }
}
