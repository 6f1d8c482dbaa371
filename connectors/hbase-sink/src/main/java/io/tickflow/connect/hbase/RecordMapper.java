package io.tickflow.connect.hbase;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;

/**
 * Maps one md.enriched record to the cells of {@code md:latest} and its row of {@code md:history}.
 * Pure: no I/O, and the same record always gives the same cells.
 *
 * <p>The field roles come from the record's own schema, never from a fixed list:
 * <ul>
 *   <li>{@code instrument_id} (string) is the row key; {@code event_time} (long, micros) dates the record;</li>
 *   <li>a field {@code X} is <em>filled</em> when the schema also has {@code X_as_of}: in latest it goes to
 *       family {@code f} with the as-of time (ms) as cell timestamp, and {@code X_as_of} itself is not written
 *       there;</li>
 *   <li>every other field, {@code instrument_id} and {@code event_time} included, goes to latest family
 *       {@code e} at the event time (ms), as {@code tickflow.hbase.layout} (the Python side, the contract)
 *       specifies.</li>
 * </ul>
 * Null fields write nothing in latest, with one exception: a filled field whose value is null while its
 * {@code X_as_of} is set is a <em>cleared register</em> ("as of then there is no value": the trade fields after a
 * cancel of the trade they held), written as an EMPTY cell ({@link #CLEARED}, zero bytes) at that as-of time.
 * It has to be a cell: one left unwritten would leave the cancelled value showing, while a cell competes by
 * timestamp like any value (a later trade replaces it, a late older one does not). Readers take an empty
 * {@code f} cell as null with a known as-of. A record of an older schema version (without {@code
 * cancelled_trade_id}, say) simply has fewer fields. Values are encoded as HBase's {@code Bytes.toBytes} would:
 * see {@link #encode}.
 *
 * <p>History is one cell per record, {@code h:r}, at the event time (ms), holding the record's Kafka value
 * exactly as received (Confluent framing + Avro body): the mapper neither re-encodes nor copies it. One cell
 * instead of one per non-null field (~46) is what makes history cheap for HBase (WAL and memstore work per
 * cell); readers decode it with the writer schema named by its schema id.
 */
public final class RecordMapper {

    public static final String FAMILY_FILLED = "f";
    public static final String FAMILY_OTHER = "e";
    public static final String FAMILY_HISTORY = "h";
    /** The one qualifier of md:history: "r", the record. */
    public static final String QUALIFIER_HISTORY = "r";
    public static final String AS_OF_SUFFIX = "_as_of";
    public static final String INSTRUMENT_ID = "instrument_id";
    public static final String EVENT_TIME = "event_time";
    /** The value of a family-f cell whose register is cleared: zero bytes. */
    public static final byte[] CLEARED = new byte[0];

    private enum Role { KEY, FILLED, AS_OF, OTHER }

    /** Field roles of one schema, computed once per schema. */
    private static final class Layout {
        final Role[] roles;
        final int[] asOfPos; // for FILLED fields: position of the X_as_of field
        final String[] names;
        final int keyPos;
        final int eventTimePos;

        Layout(Schema schema) {
            if (schema.getType() != Schema.Type.RECORD) {
                throw new RecordRejectedException("schema " + schema.getFullName() + " is not a record");
            }
            List<Schema.Field> fields = schema.getFields();
            int n = fields.size();
            roles = new Role[n];
            asOfPos = new int[n];
            names = new String[n];
            Set<String> pairedAsOf = new HashSet<>();
            for (Schema.Field f : fields) {
                if (schema.getField(f.name() + AS_OF_SUFFIX) != null) {
                    pairedAsOf.add(f.name() + AS_OF_SUFFIX);
                }
            }
            Schema.Field key = schema.getField(INSTRUMENT_ID);
            Schema.Field time = schema.getField(EVENT_TIME);
            if (key == null || time == null) {
                throw new RecordRejectedException("schema " + schema.getFullName() + " lacks the "
                        + (key == null ? INSTRUMENT_ID : EVENT_TIME) + " field the HBase layout needs");
            }
            keyPos = key.pos();
            eventTimePos = time.pos();
            for (Schema.Field f : fields) {
                int i = f.pos();
                names[i] = f.name();
                asOfPos[i] = -1;
                if (i == keyPos) {
                    roles[i] = Role.KEY;
                } else if (pairedAsOf.contains(f.name())) {
                    roles[i] = Role.AS_OF;
                } else if (schema.getField(f.name() + AS_OF_SUFFIX) != null) {
                    roles[i] = Role.FILLED;
                    asOfPos[i] = schema.getField(f.name() + AS_OF_SUFFIX).pos();
                } else {
                    roles[i] = Role.OTHER;
                }
            }
        }
    }

    /** The cells of one record. */
    public static final class Mapped {
        private final String instrumentId;
        private final long eventTimeMicros;
        private final List<HCell> latestCells;
        private final byte[] historyRow;
        private final byte[] historyValue;

        Mapped(String instrumentId, long eventTimeMicros, List<HCell> latestCells, byte[] historyRow,
               byte[] historyValue) {
            this.instrumentId = instrumentId;
            this.eventTimeMicros = eventTimeMicros;
            this.latestCells = Collections.unmodifiableList(latestCells);
            this.historyRow = historyRow;
            this.historyValue = historyValue;
        }

        public String instrumentId() {
            return instrumentId;
        }

        public long eventTimeMicros() {
            return eventTimeMicros;
        }

        /** Row key of md:latest: the UTF-8 instrument id. */
        public byte[] latestRow() {
            return instrumentId.getBytes(StandardCharsets.UTF_8);
        }

        /** Cells of md:latest, families f and e, in schema order. */
        public List<HCell> latestCells() {
            return latestCells;
        }

        /** Row key of md:history: instrument id, 0x00, Long.MAX_VALUE - event_time (8 bytes, big-endian). */
        public byte[] historyRow() {
            return historyRow.clone();
        }

        /** The one cell of md:history: {@code h:r} at the event time (ms), the record's value as received. */
        public HCell historyCell() {
            return new HCell(FAMILY_HISTORY, QUALIFIER_HISTORY, Math.floorDiv(eventTimeMicros, 1000L), historyValue);
        }

        /** The history cell's value, not copied: for {@link LatestBatch#historyPut}, which hands it to the Put. */
        byte[] historyValue() {
            return historyValue;
        }
    }

    private final Map<Schema, Layout> layouts = new ConcurrentHashMap<>();

    /**
     * Maps a record to its cells.
     *
     * @param record the decoded value, for md:latest and the history row key
     * @param value  the value's bytes as received from Kafka (Confluent framing + Avro body), which become the
     *               history cell as they are; not copied, so the caller must not change them afterwards
     * @throws RecordRejectedException when the record cannot be laid out (no instrument id, no event time, ...)
     */
    public Mapped map(GenericRecord record, byte[] value) {
        Objects.requireNonNull(value, "value");
        Schema schema = record.getSchema();
        Layout layout = layouts.computeIfAbsent(schema, Layout::new);

        Object keyValue = record.get(layout.keyPos);
        if (!(keyValue instanceof CharSequence)) {
            throw new RecordRejectedException(INSTRUMENT_ID + " is " + (keyValue == null ? "null" : "not a string")
                    + ", cannot build the row key");
        }
        String instrumentId = keyValue.toString();
        if (instrumentId.isEmpty() || instrumentId.indexOf('\0') >= 0) {
            throw new RecordRejectedException(INSTRUMENT_ID + " '" + instrumentId.replace('\0', '?')
                    + "' is empty or holds a 0x00 byte, which the history row key uses as separator");
        }
        long eventTimeMicros = timestampMicros(record.get(layout.eventTimePos), EVENT_TIME, false);
        long eventTimeMs = Math.floorDiv(eventTimeMicros, 1000L);

        List<HCell> latest = new ArrayList<>();
        for (int i = 0; i < layout.roles.length; i++) {
            if (layout.roles[i] == Role.AS_OF) {
                continue; // an as-of time is its filled field's cell timestamp, not a column
            }
            Object v = record.get(i);
            String name = layout.names[i];
            switch (layout.roles[i]) {
                case FILLED: {
                    Object asOf = record.get(layout.asOfPos[i]);
                    if (v == null) {
                        if (asOf != null) { // cleared: the empty cell replaces the value it clears
                            long ts = Math.floorDiv(timestampMicros(asOf, name + AS_OF_SUFFIX, true), 1000L);
                            latest.add(new HCell(FAMILY_FILLED, name, ts, CLEARED));
                        }
                        break; // never set: nothing to write
                    }
                    // a value without its as-of time cannot be fresher than the record itself
                    long ts = asOf == null ? eventTimeMs
                            : Math.floorDiv(timestampMicros(asOf, name + AS_OF_SUFFIX, true), 1000L);
                    latest.add(new HCell(FAMILY_FILLED, name, ts, encode(v)));
                    break;
                }
                case KEY:
                case OTHER:
                default:
                    if (v != null) {
                        latest.add(new HCell(FAMILY_OTHER, name, eventTimeMs, encode(v)));
                    }
                    break;
            }
        }
        return new Mapped(instrumentId, eventTimeMicros, latest, historyRowKey(instrumentId, eventTimeMicros),
                value);
    }

    /** instrument id (UTF-8) + 0x00 + (Long.MAX_VALUE - eventTimeMicros) as 8 big-endian bytes. */
    public static byte[] historyRowKey(String instrumentId, long eventTimeMicros) {
        byte[] id = instrumentId.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(id.length + 1 + Long.BYTES)
                .put(id)
                .put((byte) 0)
                .putLong(Long.MAX_VALUE - eventTimeMicros)
                .array();
    }

    private static long timestampMicros(Object v, String field, boolean nullable) {
        if (!(v instanceof Long) && !(v instanceof Integer)) {
            throw new RecordRejectedException(field + " is " + (v == null ? "null" : "a " + v.getClass().getSimpleName())
                    + ", expected a timestamp in microseconds" + (nullable ? "" : " (required)"));
        }
        long micros = ((Number) v).longValue();
        if (micros < 0) {
            throw new RecordRejectedException(field + " is " + micros
                    + ", before 1970; HBase cell timestamps cannot be negative");
        }
        return micros;
    }

    /**
     * Encodes one Avro value as HBase's {@code Bytes.toBytes} would: double (and float, widened) as 8-byte
     * IEEE-754 big-endian; int and long as 8-byte big-endian long; boolean as one byte 0xFF/0x00; string and
     * enum as UTF-8. Bytes and fixed go as they are; records, arrays and maps as their JSON text.
     */
    public static byte[] encode(Object v) {
        if (v instanceof CharSequence || v instanceof GenericEnumSymbol) {
            return v.toString().getBytes(StandardCharsets.UTF_8);
        }
        if (v instanceof Long || v instanceof Integer || v instanceof Short || v instanceof Byte) {
            return ByteBuffer.allocate(Long.BYTES).putLong(((Number) v).longValue()).array();
        }
        if (v instanceof Double || v instanceof Float) {
            return ByteBuffer.allocate(Double.BYTES).putDouble(((Number) v).doubleValue()).array();
        }
        if (v instanceof Boolean) {
            return new byte[] {(Boolean) v ? (byte) -1 : (byte) 0};
        }
        if (v instanceof ByteBuffer) {
            ByteBuffer b = ((ByteBuffer) v).duplicate();
            byte[] out = new byte[b.remaining()];
            b.get(out);
            return out;
        }
        if (v instanceof GenericFixed) {
            return ((GenericFixed) v).bytes().clone();
        }
        return GenericData.get().toString(v).getBytes(StandardCharsets.UTF_8);
    }
}
