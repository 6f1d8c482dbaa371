package io.tickflow.connect.marketevent;

import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;

/**
 * {@code tickflow.md.MarketEvent} as a Connect schema: the same field names, in the same order, as
 * {@code schemas/tickflow.md.MarketEvent.avsc}.
 *
 * <p>Connect has no enum and no microsecond timestamp, so {@code source} and {@code trade_side} are
 * strings holding the enum symbol, and {@code event_time} is a plain int64 of microseconds since the
 * epoch (UTC). {@link MarketEventAvroConverter} turns them back into the registered schema's enum and
 * {@code timestamp-micros} types by field name; a test keeps the field names equal to the .avsc.
 */
public final class MarketEventSchema {

    public static final String NAME = "tickflow.md.MarketEvent";
    /** The {@code Source} enum symbol of events from the trade-capture database. */
    public static final String SOURCE_TRADES = "trades";

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
}
