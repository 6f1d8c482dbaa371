package io.tickflow.stream.fill;

import java.util.Arrays;
import java.util.Objects;

/**
 * The stored registers of one instrument ({@code tickflow.fill.semantics.InstrumentState}): per fill field the
 * value, the event time it was observed at (as-of, µs since the epoch) and the Kafka offset of the event that
 * set it. A field never set has as-of and offset {@link #NEVER} and a null value.
 *
 * <p>A register is last-writer-wins by (as-of, offset): {@link #offer} replaces it when the new pair is
 * greater or equal (newer wins; at equal time the later event of the partition wins), {@link #merge} keeps per
 * field the greater pair ({@code tickflow.fill.state.merge}), so layers merge in any order.
 */
public final class InstrumentState {
  /** As-of time and offset of a field never set (numpy's int64 minimum in the Python code). */
  public static final long NEVER = Long.MIN_VALUE;

  private final Object[] values;
  private final long[] asOf;
  private final long[] offsets;

  /** No field set. */
  public InstrumentState(int fieldCount) {
    values = new Object[fieldCount];
    asOf = new long[fieldCount];
    offsets = new long[fieldCount];
    Arrays.fill(asOf, NEVER);
    Arrays.fill(offsets, NEVER);
  }

  public InstrumentState copy() {
    InstrumentState copy = new InstrumentState(values.length);
    System.arraycopy(values, 0, copy.values, 0, values.length);
    System.arraycopy(asOf, 0, copy.asOf, 0, asOf.length);
    System.arraycopy(offsets, 0, copy.offsets, 0, offsets.length);
    return copy;
  }

  public int fieldCount() {
    return values.length;
  }

  public boolean isSet(int field) {
    return asOf[field] != NEVER;
  }

  public Object value(int field) {
    return values[field];
  }

  public long asOf(int field) {
    return asOf[field];
  }

  public long offset(int field) {
    return offsets[field];
  }

  /** Sets a register unconditionally (reading stored state). */
  public InstrumentState set(int field, Object value, long asOfMicros, long offset) {
    values[field] = value;
    asOf[field] = asOfMicros;
    offsets[field] = offset;
    return this;
  }

  /**
   * An event's non-null value of {@code field}, observed at {@code eventTime} at {@code offset}: it replaces
   * the register when (eventTime, offset) is greater than or equal to the stored pair. Returns whether it did.
   */
  public boolean offer(int field, Object value, long eventTime, long offset) {
    if (asOf[field] == NEVER
        || eventTime > asOf[field]
        || (eventTime == asOf[field] && offset >= offsets[field])) {
      values[field] = value;
      asOf[field] = eventTime;
      offsets[field] = offset;
      return true;
    }
    return false;
  }

  /**
   * Per field the register with the greater (as-of, offset); {@code a}'s on a tie, as Python's {@code max}
   * keeps the first (equal pairs come from the same event anyway). Either may be null. A new object.
   */
  public static InstrumentState merge(InstrumentState a, InstrumentState b) {
    if (a == null || b == null) {
      InstrumentState only = a != null ? a : b;
      if (only == null) {
        throw new IllegalArgumentException("merge of two missing states needs a field count");
      }
      return only.copy();
    }
    if (a.values.length != b.values.length) {
      throw new IllegalArgumentException("states of " + a.values.length + " and " + b.values.length + " fields");
    }
    InstrumentState merged = a.copy();
    for (int f = 0; f < b.values.length; f++) {
      if (b.isSet(f)
          && (!a.isSet(f) || b.asOf[f] > a.asOf[f] || (b.asOf[f] == a.asOf[f] && b.offsets[f] > a.offsets[f]))) {
        merged.set(f, b.values[f], b.asOf[f], b.offsets[f]);
      }
    }
    return merged;
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof InstrumentState s
        && Arrays.equals(values, s.values)
        && Arrays.equals(asOf, s.asOf)
        && Arrays.equals(offsets, s.offsets);
  }

  @Override
  public int hashCode() {
    return Objects.hash(Arrays.hashCode(values), Arrays.hashCode(asOf), Arrays.hashCode(offsets));
  }

  @Override
  public String toString() {
    StringBuilder text = new StringBuilder("InstrumentState{");
    boolean first = true;
    for (int f = 0; f < values.length; f++) {
      if (isSet(f)) {
        text.append(first ? "" : ", ").append(f).append('=').append(values[f]);
        text.append('@').append(asOf[f]).append('#').append(offsets[f]);
        first = false;
      }
    }
    return text.append('}').toString();
  }
}
