package io.tickflow.connect.marketevent;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Map;

import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.components.Versioned;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.storage.Converter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Value converter writing a Struct in the Confluent wire format (byte 0, the 4-byte big-endian schema id, the
 * Avro binary body) with the schema <b>already registered</b> under {@code subject} ({@code md.events-value}),
 * so Connect-produced events are byte-compatible with the Python producers' and decode with the same id.
 *
 * <p>Why not Confluent's or Apicurio's converter: they derive the Avro schema from the Connect schema, which has
 * no enums and no microsecond timestamps, so the result is not the registered MarketEvent (see
 * {@code docs/notes/non-kafka-source.md}, §3). Here the registered schema is looked up once in
 * {@link #configure}, and {@link AvroRecords} maps fields by name onto it; Avro's {@link GenericDatumWriter}
 * writes the body. A schema registered later is picked up when the task restarts; until then a value that sets a
 * field the registered version lacks (a cancel with MarketEvent v1 registered) fails the task with one sentence
 * instead of losing the field.
 *
 * <p>Value side only: keys are plain strings, for which Connect's {@code StringConverter} writes the same bytes as
 * the Python producers' {@code produce(topic, value, key: str)}. It only encodes ({@link #toConnectData} is refused):
 * it is meant for a source connector's output.
 */
public class MarketEventAvroConverter implements Converter, Versioned {

    public static final String REGISTRY_URL = "schema.registry.url";
    public static final String SUBJECT = "subject";
    public static final String TIMEOUT_MS = "schema.registry.timeout.ms";

    public static final ConfigDef CONFIG_DEF = new ConfigDef()
            .define(REGISTRY_URL, ConfigDef.Type.STRING, ConfigDef.NO_DEFAULT_VALUE, new ConfigDef.NonEmptyString(),
                    ConfigDef.Importance.HIGH,
                    "Confluent-compatible registry base URL, e.g. http://127.0.0.1:8081/apis/ccompat/v7")
            .define(SUBJECT, ConfigDef.Type.STRING, "md.events-value", new ConfigDef.NonEmptyString(),
                    ConfigDef.Importance.MEDIUM, "Subject whose latest registered schema (and its id) values are written with")
            .define(TIMEOUT_MS, ConfigDef.Type.INT, 10_000, ConfigDef.Range.atLeast(1), ConfigDef.Importance.LOW,
                    "Timeout of the one registry lookup at configure, in milliseconds");

    private static final Logger log = LoggerFactory.getLogger(MarketEventAvroConverter.class);

    private RegisteredSchema registered;
    private byte[] header;
    private GenericDatumWriter<GenericData.Record> writer;
    private BinaryEncoder encoder;

    @Override
    public void configure(Map<String, ?> configs, boolean isKey) {
        if (isKey) {
            throw new ConfigException("MarketEventAvroConverter writes record values only; use "
                    + "org.apache.kafka.connect.storage.StringConverter as the key converter");
        }
        AbstractConfig config = new AbstractConfig(CONFIG_DEF, configs);
        use(RegisteredSchema.latest(config.getString(REGISTRY_URL), config.getString(SUBJECT),
                Duration.ofMillis(config.getInt(TIMEOUT_MS))));
        log.info("writing values with {} version {} (schema id {}) of subject {}", registered.schema().getFullName(),
                registered.version(), registered.id(), registered.subject());
    }

    /** Writes with this schema and id from now on; {@link #configure} calls it with the registry's answer. */
    void use(RegisteredSchema schema) {
        registered = schema;
        header = ByteBuffer.allocate(5).put((byte) 0).putInt(schema.id()).array();
        writer = new GenericDatumWriter<>(schema.schema());
    }

    /** The registered schema and id values are written with (null before {@link #configure}). */
    public RegisteredSchema registered() {
        return registered;
    }

    @Override
    public byte[] fromConnectData(String topic, Schema schema, Object value) {
        if (registered == null) {
            throw new IllegalStateException("MarketEventAvroConverter used before configure()");
        }
        if (value == null) {
            throw new DataException("a null value (a tombstone) for " + topic + " has no MarketEvent encoding; "
                    + "drop it before the converter (DebeziumTradeToMarketEvent drops tombstones)");
        }
        if (!(value instanceof Struct struct)) {
            throw new DataException("the value for " + topic + " is a " + value.getClass().getSimpleName()
                    + ", expected a Struct (put DebeziumTradeToMarketEvent before this converter)");
        }
        GenericData.Record record = AvroRecords.toRecord(struct, registered.schema(), this::notRegistered);
        ByteArrayOutputStream out = new ByteArrayOutputStream(128);
        out.writeBytes(header);
        try {
            encoder = EncoderFactory.get().binaryEncoder(out, encoder);
            writer.write(record, encoder);
            encoder.flush();
        } catch (IOException | RuntimeException e) {
            throw new DataException("the value for " + topic + " does not encode with schema id " + registered.id()
                    + " of " + registered.subject() + ": " + e.getMessage(), e);
        }
        return out.toByteArray();
    }

    /**
     * A value sets a field the registered schema lacks: the registered MarketEvent is older than the plugin's (a
     * cancel's {@code cancelled_trade_id} while {@code md.events-value} is still v1). Writing it would drop the field
     * (a cancel would become an event that says nothing), so the task fails; the record's offset is not committed,
     * and it is written once the newer version is registered and the task restarted, which looks the latest
     * version up again.
     */
    private DataException notRegistered(String field) {
        return new DataException("field " + field + " is set, but " + registered.subject() + " version "
                + registered.version() + " (schema id " + registered.id() + "), which this task writes with, has no "
                + field + " and would lose it; register MarketEvent v" + MarketEventSchema.VERSION
                + " with `tickflow schemas register` and restart the task");
    }

    @Override
    public SchemaAndValue toConnectData(String topic, byte[] value) {
        throw new DataException("MarketEventAvroConverter only writes (a source connector's value converter); "
                + "it cannot read " + topic);
    }

    @Override
    public ConfigDef config() {
        return CONFIG_DEF;
    }

    @Override
    public String version() {
        return Version.get();
    }
}
