package io.tickflow.connect.marketevent;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.components.Versioned;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.header.Headers;
import org.apache.kafka.connect.transforms.Transformation;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns Debezium PostgreSQL change events of the trade-capture table into MarketEvent trade prints and cancels
 * for {@code md.events}: value = a {@link MarketEventSchema} Struct, key = the instrument id (STRING), topic =
 * {@code topic}, partition = the one tickflow's Python producers would pick ({@link LibrdkafkaPartitioner}),
 * record timestamp left unset so the broker's CreateTime is the time of produce, as for the Python producers.
 *
 * <p>What each change becomes (why: {@code docs/notes/non-kafka-source.md}, §4):
 * <ul>
 *   <li>{@code c} (insert) and {@code r} (snapshot read): a trade print of {@code after}.</li>
 *   <li>{@code u} (update): a correction, printed as a new event of {@code after} with the same
 *       {@code trade_id}, the new {@code version} in its {@code event_id} and the new {@code change_seq} as its
 *       {@code sequence}; {@code event_time} stays the booking time. An update that changes no market field
 *       (instrument, booked_at, price, size, side) is dropped. A correction that keeps the version while a
 *       market field changed is refused: its {@code event_id} would equal the original's and consumers would
 *       drop it as a duplicate.</li>
 *   <li>{@code d} (delete): a cancel ({@link MarketEventSchema#cancel}): {@code cancelled_trade_id} = the deleted
 *       row's {@code trade_id} and no other trade field, keyed by the row's instrument, {@code event_id}
 *       {@code <trade_id>#cancel}, {@code event_time} = the delete's commit time; the stream clears the
 *       instrument's trade fields if they still hold that trade. The instrument comes from the old row, so a
 *       delete without it (the table's REPLICA IDENTITY is not FULL) is refused. A cancel needs MarketEvent v2
 *       registered under {@code md.events-value}: while the converter writes with v1 it fails the task on the
 *       first cancel (the offset is not committed, so the cancel is published after v2 is registered and the task
 *       restarted).</li>
 *   <li>{@code t} (truncate), tombstones (null values), and records of other tables or Debezium's heartbeat
 *       topic: dropped (Connect still commits their offsets).</li>
 * </ul>
 * Bad input is a {@link DataException} with one sentence: with Connect's default {@code errors.tolerance=none}
 * the task fails and the change is not lost (its offset is not committed); source connectors have no dead
 * letter queue.
 */
public class DebeziumTradeToMarketEvent<R extends ConnectRecord<R>> implements Transformation<R>, Versioned {

    public static final String PARTITIONS = "partitions";
    public static final String TOPIC = "topic";
    public static final String TABLE = "table";
    public static final String COMMIT_TIME_HEADER = "commit.time.header";

    public static final ConfigDef CONFIG_DEF = new ConfigDef()
            .define(PARTITIONS, ConfigDef.Type.INT, ConfigDef.NO_DEFAULT_VALUE, ConfigDef.Range.atLeast(1),
                    ConfigDef.Importance.HIGH,
                    "Partition count of the output topic (md.events has 12); the partition is crc32(key) % partitions, "
                            + "as librdkafka's default partitioner picks it")
            .define(TOPIC, ConfigDef.Type.STRING, "md.events", new ConfigDef.NonEmptyString(),
                    ConfigDef.Importance.MEDIUM, "Topic the MarketEvents go to")
            .define(TABLE, ConfigDef.Type.STRING, "trade_capture.trades", new ConfigDef.NonEmptyString(),
                    ConfigDef.Importance.MEDIUM, "<schema>.<table> whose changes are trades; other tables are dropped")
            .define(COMMIT_TIME_HEADER, ConfigDef.Type.STRING, "", ConfigDef.Importance.LOW,
                    "If set, a header of this name carries the PostgreSQL commit time (source.ts_us, microseconds), "
                            + "to split the latency into database-to-Connect and Connect-to-Kafka");

    private static final Logger log = LoggerFactory.getLogger(DebeziumTradeToMarketEvent.class);
    private static final String HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat";

    private int partitions;
    private String topic;
    private String schemaName;
    private String tableName;
    private String table;
    private String commitTimeHeader;
    private final Set<String> warnedTopics = ConcurrentHashMap.newKeySet();
    private long cancels;
    private long unchangedUpdates;

    @Override
    public void configure(Map<String, ?> props) {
        AbstractConfig config = new AbstractConfig(CONFIG_DEF, props);
        partitions = config.getInt(PARTITIONS);
        topic = config.getString(TOPIC);
        table = config.getString(TABLE);
        int dot = table.indexOf('.');
        if (dot <= 0 || dot == table.length() - 1 || table.indexOf('.', dot + 1) >= 0) {
            throw new org.apache.kafka.common.config.ConfigException(TABLE, table,
                    "must be <schema>.<table>, e.g. trade_capture.trades");
        }
        schemaName = table.substring(0, dot);
        tableName = table.substring(dot + 1);
        commitTimeHeader = config.getString(COMMIT_TIME_HEADER).strip();
    }

    @Override
    public R apply(R record) {
        if (record.value() == null) {
            return null; // a tombstone: md.events never carries one (its key would be a Debezium primary key)
        }
        if (!(record.value() instanceof Struct envelope) || !isTradeChange(envelope)) {
            dropOther(record);
            return null;
        }
        String op = stringField(envelope, "op");
        if (op == null) {
            throw new DataException("a change event of " + table + " has no op");
        }
        switch (op) {
            case "c":
            case "r":
                return print(record, envelope, row(envelope, "after", op));
            case "u":
                return correction(record, envelope);
            case "d":
                return cancel(record, envelope);
            case "t":
                log.warn("{} was truncated; MarketEvents cannot express that, nothing is published", table);
                return null;
            default:
                throw new DataException("a change event of " + table + " has op '" + op
                        + "', expected c, r, u, d or t");
        }
    }

    private R correction(R record, Struct envelope) {
        TradeRow after = row(envelope, "after", "u");
        Struct beforeStruct = envelope.getStruct("before");
        if (beforeStruct == null) {
            // REPLICA IDENTITY DEFAULT: no old row, so every update counts as a correction
            return print(record, envelope, after);
        }
        TradeRow before = TradeRow.from(beforeStruct, table);
        if (after.sameMarketFields(before)) {
            unchangedUpdates++;
            log.debug("update of trade {} changes no market field; dropped ({} so far)", after.tradeId(), unchangedUpdates);
            return null;
        }
        if (after.version() <= before.version()) {
            throw new DataException("trade " + after.tradeId() + " in " + table + " was corrected without a new version (still "
                    + after.version() + "); the booker must increment version on every correction, or the "
                    + "correction's event_id equals the original's and consumers drop it as a duplicate");
        }
        if (!after.instrumentId().equals(before.instrumentId())) {
            log.info("trade {} moved from {} to {}; {}'s last trade is not rolled back", after.tradeId(),
                    before.instrumentId(), after.instrumentId(), before.instrumentId());
        }
        return print(record, envelope, after);
    }

    /**
     * The cancel of the deleted row. Its instrument (the key) is only in the old row, which PostgreSQL writes to the
     * WAL only under REPLICA IDENTITY FULL; under DEFAULT Debezium sends no old row or one with only the key.
     */
    private R cancel(R record, Struct envelope) {
        Struct before = envelope.getStruct("before");
        Field instrument = before == null ? null : before.schema().field("instrument_id");
        if (instrument == null || before.get(instrument) == null) {
            throw new DataException("the delete of trade " + deletedTradeId(record, before) + " in " + table
                    + " carries no old row with its instrument_id, so its cancel has no key; set REPLICA IDENTITY FULL "
                    + "on the table (ALTER TABLE " + table + " REPLICA IDENTITY FULL), then skip this one delete, "
                    + "whose WAL record stays without the row, by restarting the task once with errors.tolerance=all");
        }
        TradeRow cancelled = TradeRow.from(before, table);
        Struct source = envelope.getStruct("source");
        Struct value = MarketEventSchema.cancel(cancelled, commitMicros(source), lsn(source));
        cancels++;
        log.debug("trade {} of {} was cancelled (deleted); cancel published ({} so far)", cancelled.tradeId(),
                cancelled.instrumentId(), cancels);
        return publish(record, envelope, cancelled.instrumentId(), value);
    }

    /** For the message only: the trade id of a delete's old row, else of the record's key (Debezium's primary key). */
    private static String deletedTradeId(ConnectRecord<?> record, Struct before) {
        String id = before == null ? null : stringField(before, "trade_id");
        if (id == null && record.key() instanceof Struct key) {
            id = stringField(key, "trade_id");
        }
        return id == null ? "?" : id;
    }

    private R print(R record, Struct envelope, TradeRow row) {
        return publish(record, envelope, row.instrumentId(), MarketEventSchema.trade(row));
    }

    /** The MarketEvent record: keyed and partitioned by the instrument, with the commit-time header if configured. */
    private R publish(R record, Struct envelope, String instrumentId, Struct value) {
        Headers headers = record.headers().duplicate();
        if (!commitTimeHeader.isEmpty()) {
            Long commitUs = commitMicros(envelope.getStruct("source"));
            if (commitUs != null) {
                headers.addLong(commitTimeHeader, commitUs);
            }
        }
        byte[] key = instrumentId.getBytes(StandardCharsets.UTF_8);
        return record.newRecord(topic, LibrdkafkaPartitioner.partition(key, partitions), Schema.STRING_SCHEMA,
                instrumentId, MarketEventSchema.SCHEMA, value, null, headers);
    }

    private TradeRow row(Struct envelope, String image, String op) {
        Struct row = envelope.getStruct(image);
        if (row == null) {
            throw new DataException("a change event of " + table + " with op '" + op + "' has no '" + image + "' row");
        }
        return TradeRow.from(row, table);
    }

    /** A Debezium change envelope whose source block names the configured schema and table. */
    private boolean isTradeChange(Struct envelope) {
        Schema schema = envelope.schema();
        if (schema.field("op") == null || schema.field("after") == null || schema.field("before") == null
                || schema.field("source") == null || schema.field("source").schema().type() != Schema.Type.STRUCT) {
            return false;
        }
        Struct source = envelope.getStruct("source");
        return source != null && schemaName.equals(stringField(source, "schema"))
                && tableName.equals(stringField(source, "table"));
    }

    private void dropOther(R record) {
        if (record.topic() != null && record.topic().startsWith(HEARTBEAT_TOPIC_PREFIX)) {
            return;
        }
        if (warnedTopics.add(String.valueOf(record.topic()))) {
            log.warn("records of topic {} are not {} changes and are dropped (logged once per topic); "
                    + "check the connector's table.include.list", record.topic(), table);
        }
    }

    private static Long commitMicros(Struct source) {
        if (source == null) {
            return null;
        }
        Object us = source.schema().field("ts_us") == null ? null : source.get("ts_us");
        if (us instanceof Long l) {
            return l;
        }
        Object ms = source.schema().field("ts_ms") == null ? null : source.get("ts_ms");
        return ms instanceof Long l ? l * 1_000L : null;
    }

    /** The WAL position of the change (Debezium's {@code source.lsn}), or null. */
    private static Long lsn(Struct source) {
        Object lsn = source == null || source.schema().field("lsn") == null ? null : source.get("lsn");
        return lsn instanceof Long l ? l : null;
    }

    private static String stringField(Struct struct, String name) {
        Field field = struct.schema().field(name);
        Object value = field == null ? null : struct.get(field);
        return value instanceof String s ? s : null;
    }

    @Override
    public ConfigDef config() {
        return CONFIG_DEF;
    }

    @Override
    public String version() {
        return Version.get();
    }

    @Override
    public void close() {
        if (cancels > 0 || unchangedUpdates > 0) {
            log.info("{}: {} cancels published, {} updates without a market change dropped", table, cancels,
                    unchangedUpdates);
        }
    }
}
