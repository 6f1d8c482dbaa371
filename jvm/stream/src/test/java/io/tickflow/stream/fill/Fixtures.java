package io.tickflow.stream.fill;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Events and registers written the way tests/unit/stream/test_fill.py writes them. */
final class Fixtures {
  static final FillFields FIELDS = FillFields.MARKET_EVENT;
  static final int N = FIELDS.size();
  static final PartitionFill.Cancels CANCELS = PartitionFill.Cancels.of(FIELDS);

  private Fixtures() {}

  static int f(String name) {
    int index = FIELDS.indexOf(name);
    if (index < 0) {
      throw new IllegalArgumentException(name);
    }
    return index;
  }

  /** {@code ev("q1", 10, 1, "bid_price", 1.0, "ask_price", 1.2)} on instrument X, ingest time 1000 + offset. */
  static PartitionFill.Event ev(String eventId, long t, long offset, Object... fieldsAndValues) {
    return on("X", eventId, t, offset, fieldsAndValues);
  }

  static PartitionFill.Event on(String instrument, String eventId, long t, long offset, Object... fieldsAndValues) {
    Object[] values = new Object[N];
    for (int i = 0; i < fieldsAndValues.length; i += 2) {
      Object value = fieldsAndValues[i + 1];
      values[f((String) fieldsAndValues[i])] = value instanceof Integer small ? (Object) (long) small : value;
    }
    return new PartitionFill.Event(instrument, key(eventId), t, offset, 1000 + offset, values);
  }

  /** A stand-in for xxhash64(event_id): any 64-bit hash that tells the test's ids apart. */
  static long key(String eventId) {
    long h = 1125899906842597L;
    for (int i = 0; i < eventId.length(); i++) {
      h = 31 * h + eventId.charAt(i);
    }
    return h;
  }

  static PartitionFill.Result fill(Map<String, InstrumentState> prior, PartitionFill.Event... events) {
    return PartitionFill.fill(N, CANCELS, List.of(events), prior);
  }

  static PartitionFill.Result fill(InstrumentState prior, PartitionFill.Event... events) {
    return fill(prior == null ? Map.of() : Map.of("X", prior), events);
  }

  /** {@code state("bid_price", 10.0, T0, 1, "trade_id", "t1", T0, 2)}: value, as-of, offset per field. */
  static InstrumentState state(Object... registers) {
    InstrumentState state = new InstrumentState(N);
    for (int i = 0; i < registers.length; i += 4) {
      Object value = registers[i + 1] instanceof Integer small ? (Object) (long) small : registers[i + 1];
      state.set(f((String) registers[i]), value, ((Number) registers[i + 2]).longValue(),
          ((Number) registers[i + 3]).longValue());
    }
    return state;
  }

  /** The column of one field over the rows, null where never set. */
  static List<Object> column(PartitionFill.Result result, String name) {
    List<Object> values = new ArrayList<>();
    for (PartitionFill.FilledRow row : result.rows()) {
      values.add(row.values()[f(name)]);
    }
    return values;
  }

  static List<Long> asOfColumn(PartitionFill.Result result, String name) {
    List<Long> values = new ArrayList<>();
    for (PartitionFill.FilledRow row : result.rows()) {
      long asOf = row.asOf()[f(name)];
      values.add(asOf == InstrumentState.NEVER ? null : asOf);
    }
    return values;
  }

  static List<Long> times(PartitionFill.Result result) {
    List<Long> values = new ArrayList<>();
    for (PartitionFill.FilledRow row : result.rows()) {
      values.add(row.eventTime());
    }
    return values;
  }

  static Map<String, InstrumentState> states(Object... idsAndStates) {
    Map<String, InstrumentState> states = new LinkedHashMap<>();
    for (int i = 0; i < idsAndStates.length; i += 2) {
      states.put((String) idsAndStates[i], (InstrumentState) idsAndStates[i + 1]);
    }
    return states;
  }
}
