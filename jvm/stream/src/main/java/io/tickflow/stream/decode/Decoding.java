package io.tickflow.stream.decode;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a task needs to make its {@link EventDecoder}: the reader schema, the writer schemas known when the query
 * was planned, where to look up one registered later ({@link RegistryWriters}, or none), the fill fields and the
 * validation limits. Made on the driver, which builds one decoder from it at once so that a bad schema or field
 * fails there, not in every task.
 */
public final class Decoding implements Serializable {
  private static final long serialVersionUID = 1L;

  private final String readerSchema;
  private final LinkedHashMap<Long, String> writers = new LinkedHashMap<>();
  private final RegistryWriters registry;
  private final ArrayList<String> fillFields;
  private final long maxFutureUs;
  private final double crossedTolerance;
  private final ArrayList<EventDecoder.Kind> kinds = new ArrayList<>();

  /**
   * @param writers schema id (a number) -> writer schema (JSON)
   * @param registry where an id not in {@code writers} is looked up; null: such records are unknown ids
   * @param fillFields the fields after event_time, in order ({@code tickflow.fill.semantics.FILL_FIELDS})
   */
  public Decoding(
      String readerSchema,
      Map<?, ?> writers,
      RegistryWriters registry,
      List<String> fillFields,
      long maxFutureUs,
      double crossedTolerance) {
    this.readerSchema = readerSchema;
    for (Map.Entry<?, ?> writer : writers.entrySet()) {
      this.writers.put(((Number) writer.getKey()).longValue(), (String) writer.getValue());
    }
    this.registry = registry;
    this.fillFields = new ArrayList<>(fillFields);
    this.maxFutureUs = maxFutureUs;
    this.crossedTolerance = crossedTolerance;
    EventDecoder probe = decoder(); // fails here on a bad schema or field
    for (int f = 0; f < this.fillFields.size(); f++) {
      kinds.add(probe.kind(f));
    }
  }

  /** A new decoder (one per task, made when it starts: a decoder is not thread-safe). */
  public EventDecoder decoder() {
    EventDecoder decoder = new EventDecoder(readerSchema, writers, fillFields, maxFutureUs, crossedTolerance);
    return registry == null ? decoder : decoder.lookUpWritersWith(registry.asOf(System.nanoTime()));
  }

  public List<String> fillFields() {
    return fillFields;
  }

  /** How each fill field comes out of the decoder, in order. */
  public List<EventDecoder.Kind> kinds() {
    return kinds;
  }
}
