package io.tickflow.stream.fill;

import static io.tickflow.stream.fill.Fixtures.N;
import static io.tickflow.stream.fill.Fixtures.asOfColumn;
import static io.tickflow.stream.fill.Fixtures.column;
import static io.tickflow.stream.fill.Fixtures.ev;
import static io.tickflow.stream.fill.Fixtures.f;
import static io.tickflow.stream.fill.Fixtures.fill;
import static io.tickflow.stream.fill.Fixtures.on;
import static io.tickflow.stream.fill.Fixtures.times;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The cases of tests/unit/stream/test_fill.py, for the JVM fill. */
class PartitionFillTest {

  @Test
  void inOrderFillIsLastNonNullPerColumn() {
    PartitionFill.Result out =
        fill(
            (InstrumentState) null,
            ev("q1", 10, 1, "bid_price", 1.0, "ask_price", 1.2),
            ev("p1", 20, 2, "last_price", 1.1),
            ev("q2", 30, 3, "bid_price", 1.05),
            ev("t1", 40, 4, "trade_price", 1.07, "trade_size", 100, "trade_side", "buy"));
    assertEquals(List.of(10L, 20L, 30L, 40L), times(out));
    assertEquals(Arrays.asList(1.0, 1.0, 1.05, 1.05), column(out, "bid_price"));
    assertEquals(Arrays.asList(1.2, 1.2, 1.2, 1.2), column(out, "ask_price"));
    assertEquals(Arrays.asList(null, 1.1, 1.1, 1.1), column(out, "last_price"));
    assertEquals(Arrays.asList(null, null, null, 1.07), column(out, "trade_price"));
    assertEquals(Arrays.asList(null, null, null, 100L), column(out, "trade_size"));
    assertEquals(Arrays.asList(null, null, null, "buy"), column(out, "trade_side"));
    assertEquals(List.of(10L, 10L, 30L, 30L), asOfColumn(out, "bid_price"));
    InstrumentState state = out.states().get("X");
    assertEquals(1.05, state.value(f("bid_price")));
    assertEquals(30, state.asOf(f("bid_price")));
    assertEquals(List.of(1, 1, 1, 1), out.rows().stream().map(PartitionFill.FilledRow::eventCount).toList());
    assertEquals(List.of(1001L, 1002L, 1003L, 1004L),
        out.rows().stream().map(PartitionFill.FilledRow::ingestTime).toList());
  }

  @Test
  void eventsAtTheSameTimeFromSeveralSourcesBecomeOneRecord() {
    PartitionFill.Result out =
        fill(
            (InstrumentState) null,
            ev("q", 10, 1, "bid_price", 1.0),
            ev("p", 10, 2, "last_price", 2.0),
            ev("t", 10, 3, "trade_size", 5));
    assertEquals(1, out.rows().size());
    PartitionFill.FilledRow row = out.rows().get(0);
    assertEquals(10, row.eventTime());
    assertEquals(1.0, row.values()[f("bid_price")]);
    assertEquals(2.0, row.values()[f("last_price")]);
    assertEquals(5L, row.values()[f("trade_size")]);
    assertEquals(3, row.eventCount());
    assertEquals(1003, row.ingestTime()); // the newest ingest time of the three
  }

  @Test
  void atEqualTimeTheLaterEventInThePartitionWins() {
    PartitionFill.Result out =
        fill((InstrumentState) null, ev("b", 10, 7, "bid_price", 2.0), ev("a", 10, 3, "bid_price", 1.0));
    assertEquals(List.of(2.0), column(out, "bid_price"));
    assertEquals(7, out.states().get("X").offset(f("bid_price")));
  }

  @Test
  void aLateEventUpdatesOnlyFieldsWhoseStoredValueIsOlder() {
    InstrumentState state =
        fill((InstrumentState) null, ev("q", 100, 1, "bid_price", 1.0), ev("p", 50, 2, "last_price", 9.0))
            .states().get("X");
    // late: at t=70, after last_price's as-of (50) but before bid_price's (100)
    PartitionFill.Result out = fill(state, ev("late", 70, 3, "bid_price", 0.5, "last_price", 8.0));
    InstrumentState after = out.states().get("X");
    assertEquals(1.0, after.value(f("bid_price")));
    assertEquals(100, after.asOf(f("bid_price")));
    assertEquals(8.0, after.value(f("last_price")));
    assertEquals(70, after.asOf(f("last_price")));
    assertEquals(List.of(70L), times(out));
    assertEquals(List.of(1.0), column(out, "bid_price"));
    assertEquals(List.of(100L), asOfColumn(out, "bid_price"));
    assertEquals(List.of(8.0), column(out, "last_price"));
    assertEquals(List.of(70L), asOfColumn(out, "last_price"));
    // the prior is not changed in place
    assertEquals(9.0, state.value(f("last_price")));
  }

  @Test
  void aPriorRegisterNewerThanTheWholeBatchIsKept() {
    InstrumentState prior = Fixtures.state("bid_price", 5.0, 1000, 9, "last_price", 7.0, 1, 1);
    PartitionFill.Result out =
        fill(prior, ev("a", 10, 20, "bid_price", 1.0, "last_price", 2.0), ev("b", 20, 21, "bid_price", 1.5));
    assertEquals(List.of(5.0, 5.0), column(out, "bid_price"));
    assertEquals(List.of(1000L, 1000L), asOfColumn(out, "bid_price"));
    assertEquals(List.of(2.0, 2.0), column(out, "last_price"));
    assertEquals(prior.value(f("bid_price")), out.states().get("X").value(f("bid_price")));
  }

  @Test
  void duplicatesAreHarmlessWithinAndAcrossBatches() {
    PartitionFill.Result once = fill((InstrumentState) null, ev("q", 10, 1, "bid_price", 1.0));
    PartitionFill.Result twice =
        fill((InstrumentState) null, ev("q", 10, 1, "bid_price", 1.0), ev("q", 10, 1, "bid_price", 1.0));
    assertEquals(once.states(), twice.states());
    assertEquals(1, twice.rows().size());
    assertEquals(1, twice.rows().get(0).eventCount());
    PartitionFill.Result replayed = fill(once.states().get("X"), ev("q", 10, 1, "bid_price", 1.0));
    assertEquals(once.states(), replayed.states());
  }

  @Test
  void theFirstCopyOfAnEventIdWinsInInputOrder() {
    // same id, different content (a producer bug): the first copy read is the one filled, as in fill_frame
    PartitionFill.Result out =
        fill((InstrumentState) null, ev("q", 10, 1, "bid_price", 1.0), ev("q", 20, 2, "bid_price", 2.0));
    assertEquals(List.of(10L), times(out));
    assertEquals(List.of(1.0), column(out, "bid_price"));
  }

  @Test
  void aFieldNeverSetStaysNullWithNoAsOf() {
    PartitionFill.Result out = fill((InstrumentState) null, ev("q", 10, 1, "bid_price", 1.0));
    assertEquals(Collections.singletonList(null), column(out, "trade_id"));
    assertEquals(Collections.singletonList(null), asOfColumn(out, "trade_id"));
    assertFalse(out.states().get("X").isSet(f("trade_id")));
  }

  @Test
  void nanSaysNothing() {
    PartitionFill.Result out =
        fill((InstrumentState) null, ev("q", 10, 1, "bid_price", 1.0), ev("r", 20, 2, "bid_price", Double.NaN));
    assertEquals(List.of(1.0, 1.0), column(out, "bid_price"));
  }

  @Test
  void stateCarriesAcrossBatches() {
    InstrumentState state =
        fill((InstrumentState) null, ev("q", 10, 1, "bid_price", 1.0, "ask_price", 1.2)).states().get("X");
    PartitionFill.Result out = fill(state, ev("t", 20, 2, "trade_price", 1.1));
    assertEquals(List.of(20L), times(out));
    assertEquals(List.of(1.0), column(out, "bid_price"));
    assertEquals(List.of(1.2), column(out, "ask_price"));
    assertEquals(List.of(1.1), column(out, "trade_price"));
    assertEquals(List.of(10L), asOfColumn(out, "bid_price"));
  }

  @Test
  void outputAtATimeIgnoresBatchEventsAfterIt() {
    PartitionFill.Result out =
        fill((InstrumentState) null, ev("late", 5, 9, "bid_price", 0.9), ev("q", 10, 1, "bid_price", 1.0));
    assertEquals(List.of(5L, 10L), times(out));
    assertEquals(List.of(0.9, 1.0), column(out, "bid_price"));
  }

  private static List<PartitionFill.Event> randomEvents(Random rng, int count, int firstOffset, String instruments) {
    List<PartitionFill.Event> events = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      List<Object> fields = new ArrayList<>();
      for (String name : List.of("bid_price", "ask_price", "last_price")) {
        if (rng.nextInt(3) == 0) {
          fields.add(name);
          fields.add(Math.round((1 + rng.nextDouble()) * 100) / 100.0);
        }
      }
      if (rng.nextInt(3) == 0) {
        fields.add("trade_side");
        fields.add(rng.nextBoolean() ? "buy" : "sell");
      }
      String instrument = String.valueOf(instruments.charAt(rng.nextInt(instruments.length())));
      events.add(on(instrument, "e" + (firstOffset + i), rng.nextInt(21), firstOffset + i, fields.toArray()));
    }
    return events;
  }

  @ParameterizedTest
  @ValueSource(ints = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
  void finalStateDoesNotDependOnArrivalOrderOrBatching(int seed) {
    Random rng = new Random(seed);
    List<PartitionFill.Event> events = randomEvents(rng, 60, 0, "X");
    Map<String, InstrumentState> reference = PartitionFill.fill(N, events, Map.of()).states();
    List<PartitionFill.Event> shuffled = new ArrayList<>(events);
    Collections.shuffle(shuffled, rng);
    TreeSet<Integer> cuts = new TreeSet<>();
    while (cuts.size() < 4) {
      cuts.add(1 + rng.nextInt(59));
    }
    cuts.add(60);
    Map<String, InstrumentState> state = new HashMap<>();
    int start = 0;
    for (int end : cuts) {
      state.putAll(PartitionFill.fill(N, shuffled.subList(start, end), state).states());
      start = end;
    }
    state.putAll(PartitionFill.fill(N, shuffled.subList(10, 30), state).states()); // a replay changes nothing
    assertEquals(reference, state);
  }

  /** The contract read independently: per field the non-null value with the greatest (time, offset). */
  private static Object[] naive(List<PartitionFill.Event> visible, int field) {
    PartitionFill.Event best = null;
    for (PartitionFill.Event e : visible) {
      if (e.values[field] != null
          && (best == null || e.eventTime > best.eventTime || (e.eventTime == best.eventTime && e.offset > best.offset))) {
        best = e;
      }
    }
    return best == null ? new Object[] {null, null} : new Object[] {best.values[field], best.eventTime};
  }

  @ParameterizedTest
  @ValueSource(ints = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
  void everyOutputRowOfManyInstrumentsEqualsAnIndependentComputation(int seed) {
    Random rng = new Random(100 + seed);
    List<PartitionFill.Event> earlier = randomEvents(rng, 30, 0, "ABC");
    List<PartitionFill.Event> batch = new ArrayList<>(randomEvents(rng, 80, 100, "ABCD"));
    batch.addAll(new ArrayList<>(batch.subList(0, 5))); // duplicates
    Map<String, InstrumentState> prior = PartitionFill.fill(N, earlier, Map.of()).states();
    PartitionFill.Result out = PartitionFill.fill(N, batch, prior);
    for (String instrument : List.of("A", "B", "C", "D")) {
      List<PartitionFill.Event> mine = batch.stream().filter(e -> e.instrumentId.equals(instrument)).toList();
      List<Long> expectedTimes = new ArrayList<>(new TreeSet<>(mine.stream().map(e -> e.eventTime).toList()));
      List<PartitionFill.FilledRow> rows =
          out.rows().stream().filter(r -> r.instrumentId().equals(instrument)).toList();
      assertEquals(expectedTimes, rows.stream().map(PartitionFill.FilledRow::eventTime).toList());
      for (PartitionFill.FilledRow row : rows) {
        List<PartitionFill.Event> visible = new ArrayList<>();
        earlier.stream().filter(e -> e.instrumentId.equals(instrument)).forEach(visible::add);
        mine.stream().filter(e -> e.eventTime <= row.eventTime()).forEach(visible::add);
        for (String name : List.of("bid_price", "last_price", "trade_side")) {
          Object[] expected = naive(visible, f(name));
          assertEquals(expected[0], row.values()[f(name)], instrument + " " + name + " at " + row.eventTime());
          long asOf = row.asOf()[f(name)];
          assertEquals(expected[1], asOf == InstrumentState.NEVER ? null : asOf);
        }
        long distinct = mine.stream().filter(e -> e.eventTime == row.eventTime()).map(e -> e.eventKey).distinct().count();
        assertEquals(distinct, row.eventCount());
      }
      // the new registers are what filling the instrument alone gives
      assertEquals(
          PartitionFill.fill(N, mine, prior).states().get(instrument), out.states().get(instrument));
    }
    assertNull(out.states().get("E"));
  }

  // -- trade cancels: the cases of tests/unit/fill/test_semantics.py -------------------------------------------

  private static PartitionFill.Event trade(String id, long t, long offset) {
    return ev(id, t, offset, "trade_id", id, "trade_price", 1.05, "trade_size", 100, "trade_side", "buy");
  }

  @Test
  void aCancelOfTheLastTradeClearsItAsOfTheCancel() {
    PartitionFill.Result out =
        fill((InstrumentState) null, ev("q", 10, 1, "bid_price", 1.0), trade("T1", 20, 2),
            ev("T1#cancel", 30, 3, "cancelled_trade_id", "T1"));
    assertEquals(Arrays.asList(null, "T1", null), column(out, "trade_id"));
    assertEquals(Arrays.asList(null, 1.05, null), column(out, "trade_price"));
    assertEquals(Arrays.asList(null, null, "T1"), column(out, "cancelled_trade_id"));
    assertEquals(Arrays.asList(null, 20L, 30L), asOfColumn(out, "trade_side"));
    assertEquals(Arrays.asList(1.0, 1.0, 1.0), column(out, "bid_price"));
    InstrumentState after = out.states().get("X");
    assertNull(after.value(f("trade_size")));
    assertEquals(30L, after.asOf(f("trade_size")));
    assertEquals(3L, after.offset(f("trade_size")));
  }

  @Test
  void aTradeAfterACancelIsTheLastTradeAndALateOlderOneIsNot() {
    InstrumentState state =
        fill((InstrumentState) null, trade("T1", 20, 2), ev("c", 30, 3, "cancelled_trade_id", "T1"))
            .states().get("X");
    PartitionFill.Result out = fill(state, trade("T0", 15, 4), trade("T2", 40, 5));
    assertEquals(Arrays.asList(null, "T2"), column(out, "trade_id"));
  }

  @Test
  void aCancelOfAnotherTradeChangesOnlyTheLastCancel() {
    InstrumentState state = fill((InstrumentState) null, trade("T1", 20, 2), trade("T2", 25, 3)).states().get("X");
    PartitionFill.Result out =
        fill(state, ev("c", 30, 4, "cancelled_trade_id", "T1"), ev("x", 31, 5, "cancelled_trade_id", "T9"));
    assertEquals(List.of("T2", "T2"), column(out, "trade_id"));
    assertEquals(List.of("T1", "T9"), column(out, "cancelled_trade_id"));
    assertEquals(25L, out.states().get("X").asOf(f("trade_id")));
  }

  @Test
  void aCancelAndItsTradeGiveOneStateInOneBatchOrTwoAndOnReplay() {
    PartitionFill.Event print = trade("T1", 20, 2);
    PartitionFill.Event cancel = ev("c", 30, 3, "cancelled_trade_id", "T1");
    InstrumentState together = fill((InstrumentState) null, print, cancel).states().get("X");
    InstrumentState apart = fill(fill((InstrumentState) null, print).states().get("X"), cancel).states().get("X");
    InstrumentState replayed = fill(apart, print, cancel).states().get("X");
    assertEquals(together, apart);
    assertEquals(together, replayed);
  }

  @Test
  void fillFieldsWithoutTheCancelFieldHaveNoCancels() {
    FillFields v1 = new FillFields(List.of("bid_price", "trade_id"), List.of(FillFields.Kind.DOUBLE, FillFields.Kind.STRING));
    assertEquals(PartitionFill.Cancels.NONE, PartitionFill.Cancels.of(v1));
  }
}
