package io.tickflow.stream.fill;

import static io.tickflow.stream.fill.Fixtures.f;
import static io.tickflow.stream.fill.Fixtures.state;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** state.merge's rule (tests/unit/stream/test_state.py). */
class InstrumentStateTest {
  static final long T0 = 1_795_793_405_000_000L;

  @Test
  void mergeTakesPerFieldTheNewerRegisterAndCommutes() {
    InstrumentState a = state("bid_price", 10.0, T0 + 5, 1, "trade_id", "t1", T0, 2);
    InstrumentState b = state("bid_price", 11.0, T0 + 5, 3, "ask_price", 12.0, T0, 4);
    InstrumentState merged = InstrumentState.merge(a, b);
    assertEquals(11.0, merged.value(f("bid_price"))); // same time: the later offset wins
    assertEquals(3, merged.offset(f("bid_price")));
    assertEquals("t1", merged.value(f("trade_id")));
    assertEquals(12.0, merged.value(f("ask_price")));
    assertEquals(merged, InstrumentState.merge(b, a));
    assertEquals(merged, InstrumentState.merge(merged, merged));
    assertEquals(a, InstrumentState.merge(a, null));
  }
}
