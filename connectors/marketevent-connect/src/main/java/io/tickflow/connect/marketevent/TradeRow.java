package io.tickflow.connect.marketevent;

import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.Objects;
import java.util.Set;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;

/**
 * One row of {@code trade_capture.trades} as Debezium's PostgreSQL connector writes it into the
 * {@code before}/{@code after} of its change envelope, checked and reduced to what a trade print needs.
 *
 * <p>Read only through Connect's {@link Struct}, so the plugin needs no Debezium classes. Column types are
 * recognised by their Connect type and Debezium's semantic schema names:
 * <ul>
 *   <li>{@code booked_at timestamptz}: {@code io.debezium.time.ZonedTimestamp}, an ISO-8601 string, whatever
 *       {@code time.precision.mode} says. Also accepted, for a {@code timestamp} column:
 *       {@code io.debezium.time.MicroTimestamp}, {@code NanoTimestamp} and {@code Timestamp} (millis, only used
 *       for precision 0-3). Connect's own {@code Timestamp} ({@code time.precision.mode=connect}) is refused:
 *       it cuts microseconds off.</li>
 *   <li>{@code price double precision}: FLOAT64. A NUMERIC column under the default
 *       {@code decimal.handling.mode=precise} (Connect Decimal bytes) or {@code string} is refused with a
 *       sentence asking for {@code decimal.handling.mode=double}.</li>
 *   <li>{@code size bigint}, {@code version int}, {@code change_seq bigint}: any Connect integer type.</li>
 * </ul>
 * Anything missing or outside the table's constraints (null columns, a side other than {@code buy}/{@code sell})
 * is a {@link DataException} with one sentence naming the trade and the column.
 */
public record TradeRow(String tradeId, String instrumentId, long bookedAtMicros, double price, long size,
                       String side, long version, long changeSeq) {

    static final Set<String> SIDES = Set.of("buy", "sell");

    private static final String ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp";
    private static final String MICRO_TIMESTAMP = "io.debezium.time.MicroTimestamp";
    private static final String NANO_TIMESTAMP = "io.debezium.time.NanoTimestamp";
    private static final String MILLI_TIMESTAMP = "io.debezium.time.Timestamp";
    private static final String CONNECT_TIMESTAMP = "org.apache.kafka.connect.data.Timestamp";
    private static final String CONNECT_DECIMAL = "org.apache.kafka.connect.data.Decimal";
    private static final String VARIABLE_SCALE_DECIMAL = "io.debezium.data.VariableScaleDecimal";

    /** Reads one row image ({@code before} or {@code after}); {@code table} only names it in messages. */
    public static TradeRow from(Struct row, String table) {
        String tradeId = text(row, "trade_id", "?", table);
        String instrumentId = text(row, "instrument_id", tradeId, table);
        if (instrumentId.isBlank()) {
            throw new DataException("trade " + tradeId + " in " + table + " has a blank instrument_id; "
                    + "a MarketEvent needs the instrument as its key");
        }
        String side = text(row, "side", tradeId, table);
        if (!SIDES.contains(side)) {
            throw new DataException("trade " + tradeId + " in " + table + " has side '" + side
                    + "', expected buy or sell (the table's check constraint)");
        }
        return new TradeRow(tradeId, instrumentId, micros(row, "booked_at", tradeId, table),
                price(row, "price", tradeId, table), integer(row, "size", tradeId, table), side,
                integer(row, "version", tradeId, table), integer(row, "change_seq", tradeId, table));
    }

    /**
     * Whether the two images print the same trade: same instrument, booking time, price, size and side.
     * An update that changes none of these (a settlement status, say) is no correction.
     */
    public boolean sameMarketFields(TradeRow other) {
        return instrumentId.equals(other.instrumentId) && bookedAtMicros == other.bookedAtMicros
                && Double.compare(price, other.price) == 0 && size == other.size && side.equals(other.side);
    }

    private static Object value(Struct row, String column, String tradeId, String table) {
        Field field = row.schema().field(column);
        if (field == null) {
            throw new DataException("the " + table + " change of trade " + tradeId + " has no column " + column
                    + "; the table must have trade_id, instrument_id, booked_at, price, size, side, version, change_seq");
        }
        Object value = row.get(field);
        if (value == null) {
            throw new DataException("trade " + tradeId + " in " + table + " has a null " + column
                    + "; a trade print needs it (the column should be NOT NULL)");
        }
        return value;
    }

    private static String text(Struct row, String column, String tradeId, String table) {
        Object value = value(row, column, tradeId, table);
        if (!(value instanceof String s)) {
            throw new DataException(table + "." + column + " arrived as " + describe(row.schema().field(column).schema())
                    + ", expected a text column");
        }
        return s;
    }

    private static long integer(Struct row, String column, String tradeId, String table) {
        Object value = value(row, column, tradeId, table);
        if (value instanceof Long || value instanceof Integer || value instanceof Short || value instanceof Byte) {
            return ((Number) value).longValue();
        }
        throw new DataException(table + "." + column + " arrived as " + describe(row.schema().field(column).schema())
                + ", expected an integer column (int, bigint)");
    }

    private static double price(Struct row, String column, String tradeId, String table) {
        Object value = value(row, column, tradeId, table);
        Schema schema = row.schema().field(column).schema();
        if (value instanceof Double || value instanceof Float) {
            return ((Number) value).doubleValue();
        }
        if (CONNECT_DECIMAL.equals(schema.name()) || VARIABLE_SCALE_DECIMAL.equals(schema.name())
                || value instanceof String) {
            throw new DataException(table + "." + column + " arrived as " + describe(schema)
                    + "; make it double precision or set decimal.handling.mode=double on the Debezium connector");
        }
        throw new DataException(table + "." + column + " arrived as " + describe(schema)
                + ", expected double precision");
    }

    private static long micros(Struct row, String column, String tradeId, String table) {
        Object value = value(row, column, tradeId, table);
        Schema schema = row.schema().field(column).schema();
        String name = Objects.requireNonNullElse(schema.name(), "");
        switch (name) {
            case ZONED_TIMESTAMP:
                if (value instanceof String s) {
                    try {
                        OffsetDateTime t = OffsetDateTime.parse(s);
                        return Math.addExact(Math.multiplyExact(t.toEpochSecond(), 1_000_000L), t.getNano() / 1_000);
                    } catch (DateTimeParseException | ArithmeticException e) {
                        throw new DataException("trade " + tradeId + " in " + table + " has " + column + " '" + s
                                + "', which is not an ISO-8601 time with an offset", e);
                    }
                }
                break;
            case MICRO_TIMESTAMP:
                if (value instanceof Long l) {
                    return l;
                }
                break;
            case NANO_TIMESTAMP:
                if (value instanceof Long l) {
                    return Math.floorDiv(l, 1_000L);
                }
                break;
            case MILLI_TIMESTAMP:
                if (value instanceof Long l) {
                    return Math.multiplyExact(l, 1_000L);
                }
                break;
            case CONNECT_TIMESTAMP:
                throw new DataException(table + "." + column + " arrived as a Connect Timestamp (milliseconds); "
                        + "remove time.precision.mode=connect from the Debezium connector so microseconds are kept");
            default:
                break;
        }
        throw new DataException(table + "." + column + " arrived as " + describe(schema)
                + ", expected timestamptz (io.debezium.time.ZonedTimestamp)");
    }

    private static String describe(Schema schema) {
        return schema.type() + (schema.name() == null ? "" : " " + schema.name());
    }
}
