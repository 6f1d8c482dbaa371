package io.tickflow.connect.hbase;

import static io.tickflow.connect.hbase.TestRecords.INSTRUMENT;
import static io.tickflow.connect.hbase.TestRecords.T0;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.connect.errors.RetriableException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class ConfluentAvroDecoderTest {

    private static final Schema SCHEMA = TestRecords.schema();
    private static final int ID = 7;

    private HttpServer server;
    private final List<String> requests = Collections.synchronizedList(new ArrayList<>());
    private volatile int status = 200;

    @BeforeEach
    void startRegistry() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/apis/ccompat/v7/schemas/ids/", exchange -> {
            requests.add(exchange.getRequestURI().getPath());
            String path = exchange.getRequestURI().getPath();
            String id = path.substring(path.lastIndexOf('/') + 1);
            byte[] body;
            int code = status;
            if (code == 200 && id.equals(Integer.toString(ID))) {
                body = new ObjectMapper().writeValueAsBytes(Map.of("schema", SCHEMA.toString(),
                        "schemaType", "AVRO"));
            } else {
                code = code == 200 ? 404 : code;
                body = "{\"error_code\":40403,\"message\":\"Schema not found\"}".getBytes(StandardCharsets.UTF_8);
            }
            exchange.getResponseHeaders().add("Content-Type", "application/json");
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

    private static ConfluentAvroDecoder localDecoder() {
        return new ConfluentAvroDecoder(id -> {
            if (id == ID) {
                return SCHEMA;
            }
            throw new RecordRejectedException("schema id " + id + " is unknown");
        });
    }

    private static String rejection(ConfluentAvroDecoder decoder, byte[] value) {
        return assertThrows(RecordRejectedException.class, () -> decoder.decode(value)).getMessage();
    }

    @Test
    void decodesAFramedRecord() {
        GenericRecord original = TestRecords.full(SCHEMA, INSTRUMENT, T0);
        GenericRecord decoded = localDecoder().decode(TestRecords.framed(ID, original));
        assertEquals(original.toString(), decoded.toString());
        assertEquals(INSTRUMENT, decoded.get("instrument_id").toString());
        assertEquals(T0, decoded.get("event_time"));
        assertEquals("sell", decoded.get("trade_side").toString());
    }

    @Test
    void rejectsBadFraming() {
        ConfluentAvroDecoder decoder = localDecoder();
        byte[] good = TestRecords.framed(ID, TestRecords.full(SCHEMA, INSTRUMENT, T0));

        assertTrue(rejection(decoder, null).contains("null"));
        assertTrue(rejection(decoder, new byte[] {0, 0, 0, 7}).contains("too short"));
        assertTrue(rejection(decoder, new byte[0]).contains("too short"));

        byte[] wrongMagic = good.clone();
        wrongMagic[0] = 1;
        String msg = rejection(decoder, wrongMagic);
        assertTrue(msg.contains("magic byte 0x01"), msg);

        byte[] trailing = Arrays.copyOf(good, good.length + 3);
        msg = rejection(decoder, trailing);
        assertTrue(msg.contains("3 bytes left over"), msg);

        byte[] truncated = Arrays.copyOf(good, good.length - 4);
        msg = rejection(decoder, truncated);
        assertTrue(msg.contains("does not decode with schema id 7"), msg);

        byte[] unknownId = good.clone();
        unknownId[4] = 8;
        msg = rejection(decoder, unknownId);
        assertTrue(msg.contains("schema id 8 is unknown"), msg);
    }

    @Test
    void fetchesTheWriterSchemaFromTheRegistryOnce() {
        ConfluentAvroDecoder decoder = new ConfluentAvroDecoder(registryUrl());
        GenericRecord a = decoder.decode(TestRecords.framed(ID, TestRecords.full(SCHEMA, INSTRUMENT, T0)));
        GenericRecord b = decoder.decode(TestRecords.framed(ID, TestRecords.minimal(SCHEMA, "XLON:VOD", T0 + 1)));
        assertEquals(INSTRUMENT, a.get("instrument_id").toString());
        assertEquals("XLON:VOD", b.get("instrument_id").toString());
        assertEquals(List.of("/apis/ccompat/v7/schemas/ids/7"), requests, "the second lookup hits the cache");
        assertSame(decoder.schema(ID), decoder.schema(ID));
        assertEquals(SCHEMA, decoder.schema(ID));
        assertEquals(1, requests.size());
    }

    @Test
    void anIdUnknownToTheRegistryIsARejectedRecord() {
        ConfluentAvroDecoder decoder = new ConfluentAvroDecoder(registryUrl());
        String msg = rejection(decoder, TestRecords.framed(99, TestRecords.full(SCHEMA, INSTRUMENT, T0)));
        assertTrue(msg.contains("schema id 99 is unknown to the schema registry"), msg);
        assertTrue(msg.contains("HTTP 404"), msg);
        assertEquals(0, decoder.cachedSchemas());
    }

    @Test
    void aFailingRegistryIsRetriableNotARejection() {
        status = 503;
        ConfluentAvroDecoder decoder = new ConfluentAvroDecoder(registryUrl());
        byte[] value = TestRecords.framed(ID, TestRecords.full(SCHEMA, INSTRUMENT, T0));
        RetriableException e = assertThrows(RetriableException.class, () -> decoder.decode(value));
        assertTrue(e.getMessage().contains("HTTP 503"), e.getMessage());

        status = 200; // recovers: the schema was not cached as missing
        assertEquals(INSTRUMENT, decoder.decode(value).get("instrument_id").toString());
    }

    @Test
    void anUnreachableRegistryIsRetriable() {
        int port = server.getAddress().getPort();
        server.stop(0);
        ConfluentAvroDecoder decoder = new ConfluentAvroDecoder("http://127.0.0.1:" + port + "/apis/ccompat/v7");
        byte[] value = TestRecords.framed(ID, TestRecords.full(SCHEMA, INSTRUMENT, T0));
        RetriableException e = assertThrows(RetriableException.class, () -> decoder.decode(value));
        assertTrue(e.getMessage().contains("could not be reached"), e.getMessage());
    }
}
