package io.tickflow.connect.marketevent;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.apache.avro.Schema.Parser;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * Change events shaped like Debezium 3.x PostgreSQL connector output for {@code trade_capture.trades}
 * (topic.prefix {@code tickflow.trades}, pgoutput): the envelope's {@code before}/{@code after}/{@code source}/
 * {@code op}/{@code ts_ms}, the row as Debezium types the table's columns ({@code timestamptz} as
 * {@code io.debezium.time.ZonedTimestamp}), and the source block's schema/table/lsn/ts_us.
 */
final class DebeziumChanges {

    static final String TOPIC = "tickflow.trades.trade_capture.trades";
    /** 2025-11-30T00:00:00.123456Z in microseconds. */
    static final long BOOKED_US = 1_764_460_800_123_456L;
    static final String BOOKED = "2025-11-30T00:00:00.123456Z";
    static final long COMMIT_US = BOOKED_US + 2_500L;

    static final Schema ZONED_TIMESTAMP = SchemaBuilder.string().name("io.debezium.time.ZonedTimestamp").version(1).build();

    static final Schema ROW = row(ZONED_TIMESTAMP, Schema.FLOAT64_SCHEMA);

    static final Schema SOURCE = SchemaBuilder.struct().name("io.debezium.connector.postgresql.Source")
            .field("version", Schema.STRING_SCHEMA)
            .field("connector", Schema.STRING_SCHEMA)
            .field("name", Schema.STRING_SCHEMA)
            .field("ts_ms", Schema.INT64_SCHEMA)
            .field("snapshot", SchemaBuilder.string().optional().name("io.debezium.data.Enum").version(1)
                    .parameter("allowed", "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental")
                    .defaultValue("false").build())
            .field("db", Schema.STRING_SCHEMA)
            .field("sequence", Schema.OPTIONAL_STRING_SCHEMA)
            .field("ts_us", Schema.OPTIONAL_INT64_SCHEMA)
            .field("ts_ns", Schema.OPTIONAL_INT64_SCHEMA)
            .field("schema", Schema.STRING_SCHEMA)
            .field("table", Schema.STRING_SCHEMA)
            .field("txId", Schema.OPTIONAL_INT64_SCHEMA)
            .field("lsn", Schema.OPTIONAL_INT64_SCHEMA)
            .field("xmin", Schema.OPTIONAL_INT64_SCHEMA)
            .build();

    static final Schema KEY = SchemaBuilder.struct().name(TOPIC + ".Key").field("trade_id", Schema.STRING_SCHEMA).build();

    private DebeziumChanges() {
    }

    /** The row schema with booked_at and price typed as given (to test other Debezium settings). */
    static Schema row(Schema bookedAt, Schema price) {
        return SchemaBuilder.struct().name(TOPIC + ".Value").optional()
                .field("trade_id", Schema.STRING_SCHEMA)
                .field("instrument_id", Schema.OPTIONAL_STRING_SCHEMA) // optional so a null can be tested
                .field("booked_at", bookedAt)
                .field("price", price)
                .field("size", Schema.INT64_SCHEMA)
                .field("side", Schema.STRING_SCHEMA)
                .field("version", SchemaBuilder.int32().defaultValue(1).build())
                .field("change_seq", Schema.INT64_SCHEMA)
                .build();
    }

    static Schema envelope(Schema row) {
        return SchemaBuilder.struct().name(TOPIC + ".Envelope").version(2)
                .field("before", row)
                .field("after", row)
                .field("source", SOURCE)
                .field("op", Schema.STRING_SCHEMA)
                .field("ts_ms", Schema.OPTIONAL_INT64_SCHEMA)
                .field("ts_us", Schema.OPTIONAL_INT64_SCHEMA)
                .field("ts_ns", Schema.OPTIONAL_INT64_SCHEMA)
                .build();
    }

    static Struct trade(String tradeId, String instrument, double price, long size, String side, int version, long changeSeq) {
        return new Struct(ROW)
                .put("trade_id", tradeId)
                .put("instrument_id", instrument)
                .put("booked_at", BOOKED)
                .put("price", price)
                .put("size", size)
                .put("side", side)
                .put("version", version)
                .put("change_seq", changeSeq);
    }

    static Struct source(String table, String snapshot) {
        return new Struct(SOURCE)
                .put("version", "3.6.1.Final")
                .put("connector", "postgresql")
                .put("name", "tickflow.trades")
                .put("ts_ms", COMMIT_US / 1000)
                .put("snapshot", snapshot)
                .put("db", "trades")
                .put("sequence", "[null,\"24023128\"]")
                .put("ts_us", COMMIT_US)
                .put("ts_ns", COMMIT_US * 1000)
                .put("schema", "trade_capture")
                .put("table", table)
                .put("txId", 771L)
                .put("lsn", 24023128L)
                .put("xmin", null);
    }

    static SourceRecord change(String op, Struct before, Struct after) {
        Schema rowSchema = after != null ? after.schema() : before != null ? before.schema() : ROW;
        return change(op, before, after, "trades", rowSchema);
    }

    static SourceRecord change(String op, Struct before, Struct after, String table, Schema rowSchema) {
        Struct value = new Struct(envelope(rowSchema))
                .put("before", before)
                .put("after", after)
                .put("source", source(table, "r".equals(op) ? "true" : "false"))
                .put("op", op)
                .put("ts_ms", COMMIT_US / 1000 + 3)
                .put("ts_us", COMMIT_US + 3_000)
                .put("ts_ns", (COMMIT_US + 3_000) * 1000);
        Struct row = after != null ? after : before;
        Struct key = row == null ? null : new Struct(KEY).put("trade_id", row.get("trade_id"));
        return new SourceRecord(Map.of("server", "tickflow.trades"), Map.of("lsn", 24023128L, "txId", 771L),
                TOPIC, null, key == null ? null : KEY, key, value.schema(), value);
    }

    /** What Debezium emits after a delete when tombstones.on.delete=true: same key, null value. */
    static SourceRecord tombstone(String tradeId) {
        return new SourceRecord(Map.of("server", "tickflow.trades"), Map.of("lsn", 24023130L), TOPIC, null,
                KEY, new Struct(KEY).put("trade_id", tradeId), null, null);
    }

    static Path avsc() {
        return Path.of(System.getProperty("tickflow.schema.dir", "../../schemas"), "tickflow.md.MarketEvent.avsc");
    }

    /** The real MarketEvent schema, read from the repo's schemas/ folder. */
    static org.apache.avro.Schema marketEvent() {
        return parse(avsc());
    }

    /** MarketEvent v1 as released (the repo's tests/fixtures/schemas/released/, beside schemas/), without cancels. */
    static org.apache.avro.Schema releasedMarketEventV1() {
        return parse(avsc().toAbsolutePath().getParent().resolveSibling(Path.of("tests", "fixtures", "schemas", "released"))
                .resolve("tickflow.md.MarketEvent.avsc").normalize());
    }

    private static org.apache.avro.Schema parse(Path avsc) {
        try {
            return new Parser().parse(Files.readString(avsc));
        } catch (IOException e) {
            throw new IllegalStateException("cannot read the real schema at " + avsc, e);
        }
    }
}
