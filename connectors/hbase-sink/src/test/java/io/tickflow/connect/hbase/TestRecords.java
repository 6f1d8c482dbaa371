package io.tickflow.connect.hbase;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;

/** The real md.enriched schema (read from the repo's schemas/ folder) and records built on it. */
final class TestRecords {

    static final String INSTRUMENT = "XNAS:AAPL";
    /** 2023-11-14T22:13:20Z in microseconds. */
    static final long T0 = 1_700_000_000_000_000L;

    private TestRecords() {
    }

    static Path schemaFile() {
        String dir = System.getProperty("tickflow.schema.dir", "../../schemas");
        return Path.of(dir, "tickflow.md.EnrichedEvent.avsc");
    }

    static String schemaJson() {
        try {
            return Files.readString(schemaFile());
        } catch (IOException e) {
            throw new IllegalStateException("cannot read the real schema at " + schemaFile(), e);
        }
    }

    static Schema schema() {
        return new Schema.Parser().parse(schemaJson());
    }

    /** The real schema plus the given nullable fields (name, Avro type), as a later version might add. */
    static Schema schemaWithExtraFields(String... nameTypePairs) {
        try {
            ObjectMapper json = new ObjectMapper();
            ObjectNode root = (ObjectNode) json.readTree(schemaJson());
            ArrayNode fields = (ArrayNode) root.get("fields");
            for (int i = 0; i < nameTypePairs.length; i += 2) {
                ObjectNode f = fields.addObject();
                f.put("name", nameTypePairs[i]);
                ArrayNode type = f.putArray("type");
                type.add("null");
                type.add(json.readTree(nameTypePairs[i + 1]));
                f.putNull("default");
            }
            return new Schema.Parser().parse(json.writeValueAsString(root));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The fields v2 of the schema added: the last trade cancel, filled forward. */
    static final String[] V2_FIELDS = {"cancelled_trade_id", "cancelled_trade_id_as_of"};

    /** The schema as v1 was: the real one without the fields v2 added (same name, so the same record type). */
    static Schema v1Schema() {
        try {
            ObjectMapper json = new ObjectMapper();
            ObjectNode root = (ObjectNode) json.readTree(schemaJson());
            ArrayNode fields = (ArrayNode) root.get("fields");
            for (int i = fields.size() - 1; i >= 0; i--) {
                String name = fields.get(i).get("name").asText();
                if (name.equals(V2_FIELDS[0]) || name.equals(V2_FIELDS[1])) {
                    fields.remove(i);
                }
            }
            return new Schema.Parser().parse(json.writeValueAsString(root));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A record with every required field set and all nullable fields null. */
    static GenericRecord minimal(Schema schema, String instrument, long eventTime) {
        GenericRecord r = new GenericData.Record(schema);
        r.put("instrument_id", instrument);
        r.put("event_time", eventTime);
        r.put("event_count", 3);
        r.put("enriched", true);
        r.put("ingest_time", eventTime + 1_000);
        r.put("processed_time", eventTime + 2_000);
        r.put("batch_id", 42L);
        return r;
    }

    /** A fully filled record: every filled field set with as-of times at or before the event time. */
    static GenericRecord full(Schema schema, String instrument, long eventTime) {
        GenericRecord r = minimal(schema, instrument, eventTime);
        r.put("bid_price", 101.5);
        r.put("bid_price_as_of", eventTime - 1_500);
        r.put("bid_size", 300L);
        r.put("bid_size_as_of", eventTime - 1_500);
        r.put("ask_price", 101.75);
        r.put("ask_price_as_of", eventTime);
        r.put("ask_size", 200L);
        r.put("ask_size_as_of", eventTime);
        r.put("last_price", 101.6);
        r.put("last_price_as_of", eventTime - 5_000_000);
        r.put("trade_id", "T-1");
        r.put("trade_id_as_of", eventTime);
        r.put("trade_price", 101.7);
        r.put("trade_price_as_of", eventTime);
        r.put("trade_size", 10L);
        r.put("trade_size_as_of", eventTime);
        r.put("trade_side", new GenericData.EnumSymbol(schema.getField("trade_side").schema().getTypes().get(1),
                "sell"));
        r.put("trade_side_as_of", eventTime);
        r.put("symbol", "AAPL");
        r.put("currency", "USD");
        r.put("lot_size", 1L);
        r.put("tick_size", 0.01);
        r.put("mid", 101.625);
        return r;
    }

    /**
     * A record of the cancel of trade {@code tradeId} at {@code eventTime}, which the trade registers held: the
     * trade fields cleared (null, as of the cancel), the cancel itself filled, the quote carried forward.
     */
    static GenericRecord cancel(Schema schema, String instrument, long eventTime, String tradeId) {
        GenericRecord r = minimal(schema, instrument, eventTime);
        r.put("bid_price", 101.5);
        r.put("bid_price_as_of", eventTime - 1_500);
        for (String trade : new String[] {"trade_id", "trade_price", "trade_size", "trade_side"}) {
            r.put(trade, null);
            r.put(trade + "_as_of", eventTime);
        }
        r.put("cancelled_trade_id", tradeId);
        r.put("cancelled_trade_id_as_of", eventTime);
        return r;
    }

    static byte[] avroBody(GenericRecord record) {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
            new GenericDatumWriter<GenericRecord>(record.getSchema()).write(record, enc);
            enc.flush();
            return out.toByteArray();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Confluent framing: magic 0, 4-byte big-endian schema id, Avro body. */
    static byte[] framed(int schemaId, GenericRecord record) {
        byte[] body = avroBody(record);
        return ByteBuffer.allocate(5 + body.length).put((byte) 0).putInt(schemaId).put(body).array();
    }

    static byte[] hex(String s) {
        return HexFormat.of().parseHex(s.replace(" ", ""));
    }
}
