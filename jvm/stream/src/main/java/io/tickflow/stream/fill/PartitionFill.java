package io.tickflow.stream.fill;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The forward fill of one Kafka partition's micro-batch, no Spark: the semantics of
 * {@code tickflow.fill.semantics.fill_columns} / {@code fill_frame} (docs/architecture.md).
 *
 * <ol>
 *   <li>Events are de-duplicated by their event key (a hash of event_id): the first copy in input order
 *       wins, over the whole partition, as {@code fill_frame} drops {@code event_id.duplicated()}.
 *   <li>Each instrument's events are applied one by one in (event_time, offset) order to its registers,
 *       starting from the prior ones: a non-null (and, for doubles, non-NaN) value replaces a register when
 *       its (event_time, offset) is greater or equal ({@link InstrumentState#offer}). A late event therefore
 *       only replaces older registers, and a prior register newer than the batch stays.
 *   <li>After the last event of each distinct (instrument, event_time), one output row: the registers then
 *       (value and as-of per field, null when never set), how many events had that time and the newest
 *       ingest time among them. Rows come per instrument in order of first appearance, times ascending.
 * </ol>
 *
 * Applying the events in (event_time, offset) order gives after time t exactly, per field, the greater of
 * the prior register and the batch's events at or before t: the contract.
 *
 * <p>A trade cancel ({@link Cancels}): after its fields are applied, an event whose {@code cancelled_trade_id}
 * names the trade the {@code trade_id} register holds, with that register not newer than the event, clears the
 * trade registers (value null, as-of and offset the cancel's), as {@code semantics.cancel} does.
 */
public final class PartitionFill {
  private PartitionFill() {}

  /** One valid decoded event: what {@code decode.decoded_events} gives for a row whose reason is null. */
  public static final class Event {
    final String instrumentId;
    final Long eventKey;
    final long eventTime;
    final long offset;
    final long ingestTime;
    final Object[] values;

    /**
     * @param eventKey the 64-bit hash of event_id (null compares equal to null, as pandas does)
     * @param values one per fill field, null (or NaN) where the event says nothing
     */
    public Event(String instrumentId, Long eventKey, long eventTime, long offset, long ingestTime, Object[] values) {
      this.instrumentId = instrumentId;
      this.eventKey = eventKey;
      this.eventTime = eventTime;
      this.offset = offset;
      this.ingestTime = ingestTime;
      this.values = values;
    }

    public String instrumentId() {
      return instrumentId;
    }
  }

  /**
   * One filled row: the registers after every event of the instrument at or before {@code eventTime}.
   * {@code asOf[f]} is {@link InstrumentState#NEVER} (null in the output) where field f was never set.
   */
  public record FilledRow(
      String instrumentId, long eventTime, int eventCount, long ingestTime, Object[] values, long[] asOf) {}

  /**
   * Where a cancel's fields are: the field naming the cancelled trade, the trade_id field, and the fields a cancel
   * clears ({@code semantics.CANCELLED_FIELDS}). {@link #NONE} for fill fields without a cancel (a v1 reader).
   */
  public record Cancels(int cancelField, int tradeId, int[] cleared) {
    public static final Cancels NONE = new Cancels(-1, -1, new int[0]);

    public static final String CANCEL_FIELD = "cancelled_trade_id";
    public static final List<String> CLEARED = List.of("trade_id", "trade_price", "trade_size", "trade_side");

    /** The cancel of {@code fields}, NONE when they lack the cancel field or trade_id. */
    public static Cancels of(FillFields fields) {
      int cancel = fields.indexOf(CANCEL_FIELD);
      int tradeId = fields.indexOf("trade_id");
      if (cancel < 0 || tradeId < 0) {
        return NONE;
      }
      return new Cancels(cancel, tradeId, CLEARED.stream().mapToInt(fields::indexOf).filter(f -> f >= 0).toArray());
    }

    /** Applies {@code event}'s cancel, if it is one, to {@code registers}. */
    void apply(Event event, InstrumentState registers) {
      if (cancelField < 0 || event.values[cancelField] == null) {
        return;
      }
      long t = event.eventTime;
      long offset = event.offset;
      if (!registers.isSet(tradeId)
          || !event.values[cancelField].equals(registers.value(tradeId))
          || newer(registers.asOf(tradeId), registers.offset(tradeId), t, offset)) {
        return;
      }
      for (int f : cleared) {
        if (registers.isSet(f) && !newer(registers.asOf(f), registers.offset(f), t, offset)) {
          registers.set(f, null, t, offset);
        }
      }
    }

    private static boolean newer(long asOf, long registerOffset, long t, long offset) {
      return asOf > t || (asOf == t && registerOffset > offset);
    }
  }

  /** The output rows and the new registers of every instrument of the batch (copies: the priors are kept). */
  public record Result(List<FilledRow> rows, Map<String, InstrumentState> states) {}

  private static final Comparator<Event> TIME_THEN_OFFSET =
      Comparator.<Event>comparingLong(e -> e.eventTime).thenComparingLong(e -> e.offset);

  /**
   * Fills {@code events} (one partition, input order) on {@code prior} (at least the registers of the
   * instruments in it, more allowed). {@code fieldCount} values per event.
   */
  public static Result fill(int fieldCount, List<Event> events, Map<String, InstrumentState> prior) {
    return fill(fieldCount, Cancels.NONE, events, prior);
  }

  /** {@link #fill(int, List, Map)} with trade cancels at {@code cancels}' fields. */
  public static Result fill(
      int fieldCount, Cancels cancels, List<Event> events, Map<String, InstrumentState> prior) {
    Map<String, List<Event>> byInstrument = new LinkedHashMap<>();
    Set<Long> seen = new HashSet<>(Math.max(16, events.size() * 2));
    for (Event event : events) {
      if (seen.add(event.eventKey)) {
        byInstrument.computeIfAbsent(event.instrumentId, id -> new ArrayList<>()).add(event);
      }
    }
    List<FilledRow> rows = new ArrayList<>(events.size());
    Map<String, InstrumentState> states = new HashMap<>(byInstrument.size() * 2);
    for (Map.Entry<String, List<Event>> entry : byInstrument.entrySet()) {
      List<Event> mine = entry.getValue();
      mine.sort(TIME_THEN_OFFSET); // stable: equal (time, offset) keep input order, like numpy's lexsort
      InstrumentState known = prior.get(entry.getKey());
      InstrumentState registers = known != null ? known.copy() : new InstrumentState(fieldCount);
      int count = 0;
      long newestIngest = InstrumentState.NEVER;
      for (int i = 0; i < mine.size(); i++) {
        Event event = mine.get(i);
        for (int f = 0; f < fieldCount; f++) {
          Object value = event.values[f];
          if (value != null && !(value instanceof Double d && d.isNaN())) {
            registers.offer(f, value, event.eventTime, event.offset);
          }
        }
        cancels.apply(event, registers);
        count++;
        newestIngest = Math.max(newestIngest, event.ingestTime);
        if (i + 1 < mine.size() && mine.get(i + 1).eventTime == event.eventTime) {
          continue;
        }
        Object[] values = new Object[fieldCount];
        long[] asOf = new long[fieldCount];
        for (int f = 0; f < fieldCount; f++) {
          values[f] = registers.value(f);
          asOf[f] = registers.asOf(f);
        }
        rows.add(new FilledRow(entry.getKey(), event.eventTime, count, newestIngest, values, asOf));
        count = 0;
        newestIngest = InstrumentState.NEVER;
      }
      states.put(entry.getKey(), registers);
    }
    return new Result(rows, states);
  }
}
