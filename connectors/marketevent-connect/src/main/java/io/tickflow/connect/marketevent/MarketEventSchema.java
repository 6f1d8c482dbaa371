package io.tickflow.connect.marketevent;

import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;

/**
 * {@code tickflow.md.MarketEvent} as a Connect schema: the same field names, in the same order, as
 * {@code schemas/tickflow.md.MarketEvent.avsc}.
 *
 * <p>Connect has no enum and no microsecond timestamp, so {@code source} and {@code trade_side} are
 * strings holding the enum symbol, and {@code event_time} is a plain int64 of microseconds since the
 * epoch (UTC). {@link MarketEventAvroConverter} turns them back into the registered schema's enum and
 * {@code timestamp-micros} types by field name; a test keeps the field names equal to the .avsc.
 *
 * <p>Two kinds of events come from the trade-capture table: a {@link #trade trade print} (a booking or a
 * correction) and a {@link #cancel cancel} (a deleted trade, MarketEvent v2's {@code cancelled_trade_id}).
 */
public final class MarketEventSchema {

    public static final String NAME = "tickflow.md.MarketEvent";
    /** The {@code Source} enum symbol of events from the trade-capture database. */
    public static final String SOURCE_TRADES = "trades";
    /**
     * The MarketEvent version this schema mirrors (v2 added {@code cancelled_trade_id}); the converter names it when
     * the registered schema is older. A test keeps it equal to the highest "Added in vN" of the .avsc's field docs.
     */
    public static final int VERSION = 2;

    public static final Schema SCHEMA = SchemaBuilder.struct()
            .name(NAME)
            .doc("One market-data event, as in schemas/tickflow.md.MarketEvent.avsc; event_time in microseconds (UTC)")
            .field("event_id", Schema.STRING_SCHEMA)
            .field("instrument_id", Schema.STRING_SCHEMA)
            .field("source", Schema.STRING_SCHEMA)
            .field("event_time", Schema.INT64_SCHEMA)
            .field("sequence", Schema.INT64_SCHEMA)
            .field("bid_price", Schema.OPTIONAL_FLOAT64_SCHEMA)
            .field("bid_size", Schema.OPTIONAL_INT64_SCHEMA)
            .field("ask_price", Schema.OPTIONAL_FLOAT64_SCHEMA)
            .field("ask_size", Schema.OPTIONAL_INT64_SCHEMA)
            .field("last_price", Schema.OPTIONAL_FLOAT64_SCHEMA)
            .field("close_price", Schema.OPTIONAL_FLOAT64_SCHEMA)
            .field("reference_price", Schema.OPTIONAL_FLOAT64_SCHEMA)
            .field("trade_id", Schema.OPTIONAL_STRING_SCHEMA)
            .field("trade_price", Schema.OPTIONAL_FLOAT64_SCHEMA)
            .field("trade_size", Schema.OPTIONAL_INT64_SCHEMA)
            .field("trade_side", Schema.OPTIONAL_STRING_SCHEMA)
            .field("cancelled_trade_id", Schema.OPTIONAL_STRING_SCHEMA)
            .build();

    private MarketEventSchema() {
    }

    /**
     * The trade print for one version of a booked trade. {@code event_id} is {@code <trade_id>#v<version>}:
     * a replayed change keeps its id (consumers drop it as a duplicate), a correction gets a new one, and
     * the {@code #v} keeps it apart from the simulator's {@code T<seed>-<seq>} ids.
     */
    public static Struct trade(TradeRow row) {
        return new Struct(SCHEMA)
                .put("event_id", row.tradeId() + "#v" + row.version())
                .put("instrument_id", row.instrumentId())
                .put("source", SOURCE_TRADES)
                .put("event_time", row.bookedAtMicros())
                .put("sequence", row.changeSeq())
                .put("trade_id", row.tradeId())
                .put("trade_price", row.price())
                .put("trade_size", row.size())
                .put("trade_side", row.side());
    }

    /**
     * The cancel of a booked trade (its row was deleted): {@code cancelled_trade_id} = the trade's id and, as the
     * .avsc says, no other trade field, so the fill clears the instrument's trade fields only if they still hold
     * this trade (the cancel of an older trade leaves a newer last trade alone).
     * <ul>
     *   <li>{@code event_id} = {@code <trade_id>#cancel}: a replayed delete keeps its id (consumers drop the copy),
     *       and it never equals one of the trade's prints, {@code <trade_id>#v<version>}. A trade id booked again after
     *       its cancel and cancelled again would repeat it; tickflow's booker never reuses a trade id.</li>
     *   <li>{@code instrument_id} (and the key) = the deleted row's instrument, which needs the old row
     *       (REPLICA IDENTITY FULL).</li>
     *   <li>{@code event_time} = {@code commitMicros}, the delete's commit time: the cancel happens then, not at the
     *       booking time, so it is ordered after the print it cancels.</li>
     *   <li>{@code sequence} = {@code lsn}, the WAL position of the delete (Debezium's {@code source.lsn}), else the
     *       deleted row's {@code change_seq}. A delete draws no {@code change_seq} (the trigger numbers inserts and
     *       updates, and a deleted row cannot be written), so no number on the prints' scale exists for it. The LSN
     *       is the same when the delete is replayed, and it increases in WAL order (each deleted row has a WAL record
     *       of its own), which is the order Debezium emits the deletes in while transactions do not overlap, as with
     *       tickflow's booker (one connection, one transaction at a time); deletes of overlapping transactions can
     *       come out of LSN order. Cancels are thus in order among themselves, but on another scale than the
     *       prints' {@code change_seq}: a per-source order or gap check must tell them apart ({@code #cancel}, or
     *       a non-null {@code cancelled_trade_id}). The fallback repeats the number of the cancelled version's
     *       print; Debezium's PostgreSQL connector sets {@code lsn} on every streamed change.</li>
     * </ul>
     *
     * @throws DataException without a commit time (Debezium's {@code source.ts_us}, or {@code ts_ms} times 1000),
     *         which the cancel needs as its {@code event_time}
     */
    public static Struct cancel(TradeRow cancelled, Long commitMicros, Long lsn) {
        if (commitMicros == null) {
            throw new DataException("the delete of trade " + cancelled.tradeId() + " has no commit time (source.ts_us "
                    + "or source.ts_ms of the change event), which its cancel needs as event_time");
        }
        return new Struct(SCHEMA)
                .put("event_id", cancelled.tradeId() + "#cancel")
                .put("instrument_id", cancelled.instrumentId())
                .put("source", SOURCE_TRADES)
                .put("event_time", commitMicros)
                .put("sequence", lsn != null ? lsn : cancelled.changeSeq())
                .put("cancelled_trade_id", cancelled.tradeId());
    }
}
