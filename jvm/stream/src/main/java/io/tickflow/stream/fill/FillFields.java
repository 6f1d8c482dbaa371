package io.tickflow.stream.fill;

import java.io.Serializable;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The forward-filled fields, in order, with their kind: the optional fields of {@code MarketEvent}
 * ({@code tickflow.fill.semantics.FILL_FIELDS}). A value of a field is a {@link Double}, a {@link Long} or a
 * {@link String} (enums are strings), null when the event says nothing about it.
 *
 * <p>The Spark side takes the list from the decoded frame's schema (every column after the ones
 * {@code decode.decoded_events} always has), so Python's one list stays the only one; {@link #MARKET_EVENT}
 * is the same list written out, for the tests.
 */
public final class FillFields implements Serializable {
  private static final long serialVersionUID = 1L;

  /** How a field's value is stored: Parquet DOUBLE, INT64 or BINARY (UTF-8). */
  public enum Kind {
    DOUBLE,
    LONG,
    STRING
  }

  /** bid_price: double, bid_size: long, ..., trade_side: enum, cancelled_trade_id: string, as schemas/tickflow.md.MarketEvent.avsc has them. */
  public static final FillFields MARKET_EVENT =
      new FillFields(
          List.of(
              "bid_price", "bid_size", "ask_price", "ask_size", "last_price", "close_price",
              "reference_price", "trade_id", "trade_price", "trade_size", "trade_side", "cancelled_trade_id"),
          List.of(
              Kind.DOUBLE, Kind.LONG, Kind.DOUBLE, Kind.LONG, Kind.DOUBLE, Kind.DOUBLE,
              Kind.DOUBLE, Kind.STRING, Kind.DOUBLE, Kind.LONG, Kind.STRING, Kind.STRING));

  private final String[] names;
  private final Kind[] kinds;
  private final Map<String, Integer> index = new HashMap<>();

  public FillFields(List<String> names, List<Kind> kinds) {
    if (names.size() != kinds.size()) {
      throw new IllegalArgumentException(names.size() + " field names but " + kinds.size() + " kinds");
    }
    this.names = names.toArray(new String[0]);
    this.kinds = kinds.toArray(new Kind[0]);
    for (int i = 0; i < this.names.length; i++) {
      if (index.put(this.names[i], i) != null) {
        throw new IllegalArgumentException("field " + this.names[i] + " twice");
      }
    }
  }

  public int size() {
    return names.length;
  }

  public String name(int field) {
    return names[field];
  }

  public Kind kind(int field) {
    return kinds[field];
  }

  /** The position of {@code name}, -1 when it is not a fill field. */
  public int indexOf(String name) {
    return index.getOrDefault(name, -1);
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof FillFields f && Arrays.equals(names, f.names) && Arrays.equals(kinds, f.kinds);
  }

  @Override
  public int hashCode() {
    return 31 * Arrays.hashCode(names) + Arrays.hashCode(kinds);
  }

  @Override
  public String toString() {
    StringBuilder text = new StringBuilder("FillFields[");
    for (int i = 0; i < names.length; i++) {
      text.append(i == 0 ? "" : ", ").append(names[i]).append(": ").append(kinds[i]);
    }
    return text.append(']').toString();
  }
}
