package io.tickflow.connect.hbase;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.avro.Schema;
import org.apache.avro.SchemaParseException;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DatumReader;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.connect.errors.RetriableException;

/**
 * Decodes Avro values in the Confluent wire format: one magic byte 0, a 4-byte big-endian
 * schema id, then the Avro binary body written with that schema. Writer schemas are fetched
 * from a Confluent-compatible registry ({@code GET {url}/schemas/ids/{id}}) and cached forever,
 * since a schema id never changes meaning.
 *
 * <p>Values read with plain generic data: logical types stay as their underlying type
 * (timestamp-micros is a {@code long}), strings are {@link org.apache.avro.util.Utf8}.
 *
 * <p>Problems with a value throw {@link RecordRejectedException}; a registry that cannot be
 * reached (or answers with a server error) throws {@link RetriableException}.
 */
public final class ConfluentAvroDecoder {

    public static final byte MAGIC_BYTE = 0;
    public static final int HEADER_BYTES = 5;

    /** Where writer schemas come from; the registry in production, a map in tests. */
    @FunctionalInterface
    public interface SchemaSource {
        /**
         * @return the schema with that id
         * @throws RecordRejectedException when the id is unknown or its schema is not Avro
         * @throws RetriableException when the source cannot answer right now
         */
        Schema fetch(int id);
    }

    private static final class Entry {
        final Schema schema;
        final DatumReader<Object> reader;

        Entry(Schema schema) {
            this.schema = schema;
            this.reader = new GenericDatumReader<>(schema);
        }
    }

    private final SchemaSource source;
    private final Map<Integer, Entry> cache = new ConcurrentHashMap<>();

    public ConfluentAvroDecoder(String registryUrl) {
        this(new RegistrySchemaSource(registryUrl, Duration.ofSeconds(10)));
    }

    public ConfluentAvroDecoder(SchemaSource source) {
        this.source = Objects.requireNonNull(source, "source");
    }

    /** Decodes one framed value into the record it holds. */
    public GenericRecord decode(byte[] value) {
        if (value == null) {
            throw new RecordRejectedException("value is null (a tombstone), expected a Confluent-framed Avro record");
        }
        if (value.length < HEADER_BYTES) {
            throw new RecordRejectedException("value is " + value.length
                    + " bytes long, too short for the 5-byte Confluent header (magic byte + schema id)");
        }
        if (value[0] != MAGIC_BYTE) {
            throw new RecordRejectedException(String.format(
                    "value starts with magic byte 0x%02x, expected 0x00 (not Confluent-framed Avro)", value[0] & 0xff));
        }
        int id = ByteBuffer.wrap(value, 1, 4).getInt();
        Entry entry = entry(id);
        if (entry.schema.getType() != Schema.Type.RECORD) {
            throw new RecordRejectedException("schema id " + id + " is an Avro " + entry.schema.getType()
                    + ", expected a record");
        }
        BinaryDecoder decoder = DecoderFactory.get().binaryDecoder(value, HEADER_BYTES, value.length - HEADER_BYTES, null);
        Object datum;
        try {
            datum = entry.reader.read(null, decoder);
        } catch (IOException | RuntimeException e) {
            // malformed bodies surface as EOF, bad union/enum indexes, negative lengths, ...
            throw new RecordRejectedException("Avro body (" + (value.length - HEADER_BYTES)
                    + " bytes) does not decode with schema id " + id + " (" + entry.schema.getFullName() + "): "
                    + e, e);
        }
        int left = remaining(decoder);
        if (left != 0) {
            throw new RecordRejectedException((left > 0 ? left + " bytes" : "bytes") + " left over after the "
                    + entry.schema.getFullName() + " record (schema id " + id
                    + "): the body does not match its writer schema");
        }
        return (GenericRecord) datum;
    }

    /** The writer schema with that id, fetched once and then served from the cache. */
    public Schema schema(int id) {
        return entry(id).schema;
    }

    /** How many schemas are cached. */
    public int cachedSchemas() {
        return cache.size();
    }

    private Entry entry(int id) {
        Entry e = cache.get(id);
        if (e == null) {
            Schema schema = source.fetch(id);
            if (schema == null) {
                throw new RecordRejectedException("schema id " + id + " is unknown");
            }
            e = new Entry(schema);
            Entry raced = cache.putIfAbsent(id, e);
            if (raced != null) {
                e = raced;
            }
        }
        return e;
    }

    /** Bytes not consumed by the reader: 0 when at the end, -1 when there are some but the count is unknown. */
    private static int remaining(BinaryDecoder decoder) {
        try {
            if (decoder.isEnd()) {
                return 0;
            }
            int n = decoder.inputStream().available();
            return n > 0 ? n : -1;
        } catch (IOException e) {
            return -1;
        }
    }

    /** Fetches writer schemas from a Confluent-compatible registry REST API. */
    public static final class RegistrySchemaSource implements SchemaSource {

        private static final ObjectMapper JSON = new ObjectMapper();

        private final String baseUrl;
        private final Duration timeout;
        private final HttpClient http;

        public RegistrySchemaSource(String baseUrl, Duration timeout) {
            String trimmed = Objects.requireNonNull(baseUrl, "baseUrl").trim();
            while (trimmed.endsWith("/")) {
                trimmed = trimmed.substring(0, trimmed.length() - 1);
            }
            this.baseUrl = trimmed;
            this.timeout = timeout;
            this.http = HttpClient.newBuilder()
                    .connectTimeout(timeout)
                    .followRedirects(HttpClient.Redirect.NORMAL)
                    .build();
        }

        @Override
        public Schema fetch(int id) {
            URI uri = URI.create(baseUrl + "/schemas/ids/" + Integer.toUnsignedString(id));
            HttpRequest request = HttpRequest.newBuilder(uri)
                    .timeout(timeout)
                    .header("Accept", "application/vnd.schemaregistry.v1+json, application/json")
                    .GET()
                    .build();
            HttpResponse<byte[]> response;
            try {
                response = http.send(request, HttpResponse.BodyHandlers.ofByteArray());
            } catch (IOException e) {
                throw new RetriableException("schema registry at " + redacted() + " could not be reached for schema id "
                        + id + ": " + e, e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new RetriableException("interrupted while fetching schema id " + id + " from the registry", e);
            }
            int status = response.statusCode();
            if (status == 404) {
                throw new RecordRejectedException("schema id " + id + " is unknown to the schema registry at "
                        + redacted() + " (HTTP 404)");
            }
            if (status != 200) {
                throw new RetriableException("schema registry at " + redacted() + " answered HTTP " + status
                        + " for schema id " + id + ": " + snippet(response.body()));
            }
            JsonNode body;
            try {
                body = JSON.readTree(response.body());
            } catch (IOException e) {
                throw new RetriableException("schema registry answered schema id " + id
                        + " with a body that is not JSON: " + snippet(response.body()), e);
            }
            JsonNode schemaText = body == null ? null : body.get("schema");
            if (schemaText == null || !schemaText.isTextual()) {
                throw new RetriableException("schema registry answered schema id " + id
                        + " without a \"schema\" string: " + snippet(response.body()));
            }
            JsonNode type = body.get("schemaType");
            if (type != null && type.isTextual() && !type.asText().equalsIgnoreCase("AVRO")) {
                throw new RecordRejectedException("schema id " + id + " is a " + type.asText()
                        + " schema, expected AVRO");
            }
            try {
                return new Schema.Parser().parse(schemaText.asText());
            } catch (SchemaParseException e) {
                throw new RecordRejectedException("schema id " + id + " is not a valid Avro schema: "
                        + e.getMessage(), e);
            }
        }

        private String redacted() {
            return HBaseSinkConfig.redactUserInfo(baseUrl);
        }

        private static String snippet(byte[] body) {
            String s = new String(body, StandardCharsets.UTF_8).strip();
            return s.length() > 200 ? s.substring(0, 200) + "..." : s;
        }
    }
}
