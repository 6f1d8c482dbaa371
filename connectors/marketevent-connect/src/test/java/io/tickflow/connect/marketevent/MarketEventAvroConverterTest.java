package io.tickflow.connect.marketevent;

import static io.tickflow.connect.marketevent.DebeziumChanges.BOOKED_US;
import static io.tickflow.connect.marketevent.DebeziumChanges.change;
import static io.tickflow.connect.marketevent.DebeziumChanges.trade;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpServer;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.storage.Converter;
import org.apache.kafka.connect.transforms.Transformation;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The converter against a stand-in for the registry's Confluent-compatible REST API. */
class MarketEventAvroConverterTest {

    private static final int ID = 42;
    private static final String SUBJECT = "md.events-value";

    private HttpServer server;
    private final List<String> requests = Collections.synchronizedList(new ArrayList<>());
    /** What the stand-in registry answers for the subject's latest version (null: 404). */
    private volatile String registeredSchema;
    /** The version number it answers with: 2 for the repo's schema (MarketEvent v2), 1 for the released v1. */
    private volatile int registeredVersion;

    @BeforeEach
    void startRegistry() throws IOException {
        registeredSchema = DebeziumChanges.marketEvent().toString();
        registeredVersion = 2;
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/apis/ccompat/v7/subjects/", exchange -> {
            String path = exchange.getRequestURI().getPath();
            requests.add(path);
            byte[] body;
            int code;
            String schema = registeredSchema;
            if (schema != null && path.equals("/apis/ccompat/v7/subjects/" + SUBJECT + "/versions/latest")) {
                code = 200;
                body = new ObjectMapper().writeValueAsBytes(Map.of("subject", SUBJECT, "version", registeredVersion,
                        "id", ID, "schema", schema));
            } else {
                code = 404;
                body = "{\"error_code\":40401,\"message\":\"Subject not found\"}".getBytes(StandardCharsets.UTF_8);
            }
            exchange.getResponseHeaders().add("Content-Type", "application/vnd.schemaregistry.v1+json");
            exchange.sendResponseHeaders(code, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
    }

    @AfterEach
    void stopRegistry() {
        server.stop(0);
    }

    private String registryUrl() {
        return "http://127.0.0.1:" + server.getAddress().getPort() + "/apis/ccompat/v7/";
    }

    private MarketEventAvroConverter converter() {
        MarketEventAvroConverter c = new MarketEventAvroConverter();
        c.configure(Map.of("schema.registry.url", registryUrl()), false);
        return c;
    }

    private static Struct print() {
        return MarketEventSchema.trade(new TradeRow("B-1001", "XNAS:AAPL", BOOKED_US, 189.25, 300, "sell", 2, 77));
    }

    /** The cancel of {@link #print()}'s trade as the SMT builds it from a delete (commit time, source.lsn). */
    private static SourceRecord cancel() {
        DebeziumTradeToMarketEvent<SourceRecord> smt = new DebeziumTradeToMarketEvent<>();
        smt.configure(Map.of("partitions", "12"));
        return smt.apply(change("d", trade("B-1001", "XNAS:AAPL", 189.25, 300, "sell", 2, 77), null));
    }

    /** Makes the stand-in registry answer with MarketEvent v1 as released, before cancels existed. */
    private void registerV1() {
        Schema v1 = DebeziumChanges.releasedMarketEventV1();
        assertNull(v1.getField("cancelled_trade_id"), "the released v1 has no cancelled_trade_id");
        registeredSchema = v1.toString();
        registeredVersion = 1;
    }

    /** Checks the Confluent header and decodes the body with the schema read from schemas/. */
    private static GenericRecord decode(byte[] bytes, Schema readerAndWriter) throws IOException {
        assertEquals(0, bytes[0], "magic byte");
        assertEquals(ID, ByteBuffer.wrap(bytes, 1, 4).getInt(), "schema id, big-endian");
        BinaryDecoder in = DecoderFactory.get().binaryDecoder(bytes, 5, bytes.length - 5, null);
        GenericRecord record = new GenericDatumReader<GenericRecord>(readerAndWriter).read(null, in);
        assertTrue(in.isEnd(), "no bytes after the record");
        return record;
    }

    @Test
    void looksUpTheLatestRegisteredSchemaOnce() {
        MarketEventAvroConverter c = converter();
        assertEquals(ID, c.registered().id());
        assertEquals(2, c.registered().version());
        c.fromConnectData("md.events", MarketEventSchema.SCHEMA, print());
        c.fromConnectData("md.events", MarketEventSchema.SCHEMA, print());
        assertEquals(List.of("/apis/ccompat/v7/subjects/md.events-value/versions/latest"), requests);
    }

    @Test
    void roundTripThroughTheSmtDecodesWithTheRepoSchema() throws IOException {
        DebeziumTradeToMarketEvent<SourceRecord> smt = new DebeziumTradeToMarketEvent<>();
        smt.configure(Map.of("partitions", "12"));
        SourceRecord out = smt.apply(change("c", null, trade("B-1003", "XNYS:JPM", 151.5, 100, "buy", 1, 81)));

        byte[] bytes = converter().fromConnectData(out.topic(), out.valueSchema(), out.value());
        GenericRecord r = decode(bytes, DebeziumChanges.marketEvent());

        assertEquals("B-1003#v1", r.get("event_id").toString());
        assertEquals("XNYS:JPM", r.get("instrument_id").toString());
        GenericData.EnumSymbol source = assertInstanceOf(GenericData.EnumSymbol.class, r.get("source"));
        assertEquals("tickflow.md.Source", source.getSchema().getFullName());
        assertEquals("trades", source.toString());
        assertEquals(BOOKED_US, r.get("event_time"));
        assertEquals(81L, r.get("sequence"));
        assertEquals("B-1003", r.get("trade_id").toString());
        assertEquals(151.5, r.get("trade_price"));
        assertEquals(100L, r.get("trade_size"));
        GenericData.EnumSymbol side = assertInstanceOf(GenericData.EnumSymbol.class, r.get("trade_side"));
        assertEquals("tickflow.md.TradeSide", side.getSchema().getFullName());
        assertEquals("buy", side.toString());
        for (String f : List.of("bid_price", "bid_size", "ask_price", "ask_size", "last_price", "close_price",
                "reference_price")) {
            assertNull(r.get(f), f);
        }
    }

    /**
     * The same event as tickflow's Python producers encode it: bytes from
     * {@code tickflow.avro_codec.compile_encoder(<MarketEvent .avsc>, (), confluent_prefix(42))} for
     * event_id B-1001#v2, XNAS:AAPL, trades, event_time 1764460800123456, sequence 77, trade B-1001 189.25 x 300 sell,
     * with the released v1 and with v2 (one more byte: the null branch of cancelled_trade_id).
     */
    @Test
    void bytesEqualThePythonProducersEncoding() {
        String python = "000000002a12422d3130303123763212584e41533a4141504c048089b1b391b1a2069a01000000000000"
                + "00020c422d31303031020000000000a8674002d8040202";
        assertArrayEquals(HexFormat.of().parseHex(python + "00"),
                converter().fromConnectData("md.events", MarketEventSchema.SCHEMA, print()));
        registerV1();
        assertArrayEquals(HexFormat.of().parseHex(python),
                converter().fromConnectData("md.events", MarketEventSchema.SCHEMA, print()));
    }

    /**
     * A cancel, as the Python encoder writes it with v2: event_id B-1001#cancel, XNAS:AAPL, trades, event_time
     * 1764460800125956 (the commit time), sequence 24023128 (the LSN), cancelled_trade_id B-1001, all else null.
     */
    @Test
    void cancelWithV2DecodesToCancelledTradeIdAndNoTradeFields() throws IOException {
        SourceRecord out = cancel();
        byte[] bytes = converter().fromConnectData(out.topic(), out.valueSchema(), out.value());
        assertArrayEquals(HexFormat.of().parseHex("000000002a1a422d313030312363616e63656c12584e41533a4141504c04"
                + "88b0b1b391b1a206b0c1f4160000000000000000000000020c422d31303031"), bytes);

        GenericRecord r = decode(bytes, DebeziumChanges.marketEvent());
        assertEquals("B-1001#cancel", r.get("event_id").toString());
        assertEquals("XNAS:AAPL", r.get("instrument_id").toString());
        assertEquals("trades", r.get("source").toString());
        assertEquals(DebeziumChanges.COMMIT_US, r.get("event_time"));
        assertEquals(24023128L, r.get("sequence"));
        assertEquals("B-1001", r.get("cancelled_trade_id").toString());
        for (String f : List.of("trade_id", "trade_price", "trade_size", "trade_side", "bid_price", "bid_size",
                "ask_price", "ask_size", "last_price", "close_price", "reference_price")) {
            assertNull(r.get(f), f);
        }
    }

    /** Until v2 is registered and the task restarted, a cancel fails the task rather than lose its field. */
    @Test
    void withV1RegisteredACancelFailsSayingWhatToDoButPrintsStillEncode() throws IOException {
        registerV1();
        MarketEventAvroConverter c = converter();
        assertEquals(1, c.registered().version());

        SourceRecord out = cancel();
        DataException e = assertThrows(DataException.class,
                () -> c.fromConnectData(out.topic(), out.valueSchema(), out.value()));
        assertEquals("field cancelled_trade_id is set, but md.events-value version 1 (schema id 42), which this task "
                + "writes with, has no cancelled_trade_id and would lose it; register MarketEvent v2 with "
                + "`tickflow schemas register` and restart the task", e.getMessage());

        // a print's cancelled_trade_id is null, which says nothing: v1 writes it as before
        GenericRecord r = decode(c.fromConnectData("md.events", MarketEventSchema.SCHEMA, print()),
                DebeziumChanges.releasedMarketEventV1());
        assertEquals("B-1001#v2", r.get("event_id").toString());
        assertEquals(189.25, r.get("trade_price"));
    }

    @Test
    void unregisteredSubjectFailsAtConfigureSayingWhatToDo() {
        registeredSchema = null;
        ConnectException e = assertThrows(ConnectException.class, this::converter);
        assertTrue(e.getMessage().contains("md.events-value is not registered")
                && e.getMessage().contains("tickflow schemas register"), e.getMessage());
    }

    @Test
    void unreachableRegistryFailsAtConfigure() throws IOException {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        MarketEventAvroConverter c = new MarketEventAvroConverter();
        ConnectException e = assertThrows(ConnectException.class, () -> c.configure(Map.of("schema.registry.url",
                "http://127.0.0.1:" + port + "/apis/ccompat/v7", "schema.registry.timeout.ms", "2000"), false));
        assertTrue(e.getMessage().contains("could not be reached"), e.getMessage());
    }

    @Test
    void refusesToBeTheKeyConverterAndNeedsAUrl() {
        MarketEventAvroConverter c = new MarketEventAvroConverter();
        assertThrows(ConfigException.class, () -> c.configure(Map.of("schema.registry.url", registryUrl()), true));
        assertThrows(ConfigException.class, () -> c.configure(Map.of(), false));
    }

    @Test
    void aSideThatIsNoSymbolFailsInsteadOfBecomingUnknown() {
        Struct s = print().put("trade_side", "short");
        DataException e = assertThrows(DataException.class,
                () -> converter().fromConnectData("md.events", MarketEventSchema.SCHEMA, s));
        assertTrue(e.getMessage().contains("'short'") && e.getMessage().contains("TradeSide"), e.getMessage());
    }

    @Test
    void aNonNullFieldTheRegisteredSchemaLacksFails() {
        SchemaBuilder builder = SchemaBuilder.struct().name(MarketEventSchema.NAME);
        MarketEventSchema.SCHEMA.fields().forEach(f -> builder.field(f.name(), f.schema()));
        org.apache.kafka.connect.data.Schema wider = builder
                .field("trade_status", org.apache.kafka.connect.data.Schema.OPTIONAL_STRING_SCHEMA).build();
        Struct value = new Struct(wider);
        Struct print = print();
        MarketEventSchema.SCHEMA.fields().forEach(f -> value.put(f.name(), print.get(f)));
        MarketEventAvroConverter c = converter();

        // a null extra field says nothing, so nothing is lost
        c.fromConnectData("md.events", wider, value);
        DataException e = assertThrows(DataException.class,
                () -> c.fromConnectData("md.events", wider, value.put("trade_status", "cancel")));
        assertTrue(e.getMessage().contains("trade_status"), e.getMessage());
    }

    @Test
    void aRequiredFieldMissingFromTheStructFails() {
        org.apache.kafka.connect.data.Schema narrow = SchemaBuilder.struct().name(MarketEventSchema.NAME)
                .field("event_id", org.apache.kafka.connect.data.Schema.STRING_SCHEMA).build();
        DataException e = assertThrows(DataException.class, () -> converter().fromConnectData("md.events", narrow,
                new Struct(narrow).put("event_id", "x")));
        assertTrue(e.getMessage().contains("instrument_id"), e.getMessage());
    }

    @Test
    void aLaterSchemaVersionWithAnAddedOptionalFieldGetsItsDefault() throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode v2 = (ObjectNode) json.readTree(registeredSchema);
        ObjectNode status = ((ArrayNode) v2.get("fields")).addObject();
        status.put("name", "trade_status");
        status.putArray("type").add("null").add("string");
        status.putNull("default");
        registeredSchema = v2.toString();

        byte[] bytes = converter().fromConnectData("md.events", MarketEventSchema.SCHEMA, print());
        GenericRecord r = decode(bytes, new Schema.Parser().parse(registeredSchema));
        assertNull(r.get("trade_status"));
        assertEquals("B-1001#v2", r.get("event_id").toString());
    }

    @Test
    void nullValuesAndReadingAreRefused() {
        MarketEventAvroConverter c = converter();
        assertThrows(DataException.class, () -> c.fromConnectData("md.events", null, null));
        assertThrows(DataException.class, () -> c.fromConnectData("md.events", null, "text"));
        assertThrows(DataException.class, () -> c.toConnectData("md.events", new byte[] {0, 0, 0, 0, 42}));
    }

    /** The worker uses plugin.discovery=service_load: both plugins must be listed in META-INF/services. */
    @Test
    void bothPluginsAreFoundByServiceLoader() {
        @SuppressWarnings("rawtypes")
        ServiceLoader<Transformation> transforms = ServiceLoader.load(Transformation.class);
        assertTrue(transforms.stream().anyMatch(p -> p.type() == DebeziumTradeToMarketEvent.class));
        ServiceLoader<Converter> converters = ServiceLoader.load(Converter.class);
        assertTrue(converters.stream().anyMatch(p -> p.type() == MarketEventAvroConverter.class));
    }
}
