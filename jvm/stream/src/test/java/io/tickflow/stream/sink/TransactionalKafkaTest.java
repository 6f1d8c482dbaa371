package io.tickflow.stream.sink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;
import org.junit.jupiter.api.Test;

/** The sink's options and names: what a query starting with a wrong option is told, and the ids it uses. */
class TransactionalKafkaTest {
  static CaseInsensitiveStringMap options(Map<String, String> extra) {
    Map<String, String> options = new HashMap<>(Map.of(
        "topic", "md.enriched", "commits.topic", "tickflow.stream.commits", "partitions", "12",
        "kafka.bootstrap.servers", "127.0.0.1:9092", "kafka.linger.ms", "20",
        "transactional.id.prefix", "tickflow-stream"));
    options.putAll(extra);
    options.values().removeIf(value -> value == null);
    return new CaseInsensitiveStringMap(options);
  }

  @Test
  void optionsNameTheQueryInEveryTransactionalIdAndMarker() {
    TransactionalKafka.Options options = TransactionalKafka.Options.of(options(Map.of()), "q-1");
    assertEquals("tickflow-stream-q-1-3", options.transactionalId(3));
    assertEquals("tickflow-stream-q-1:7", options.marker(7));
    assertTrue(options.marker(7).startsWith(options.prefix()));
    assertEquals(Map.of("bootstrap.servers", "127.0.0.1:9092", "linger.ms", "20"), options.producer());
    assertEquals(12, options.partitions());
  }

  @Test
  void aMissingOptionIsNamed() {
    Map<String, String> without = new HashMap<>();
    without.put("commits.topic", null);
    IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
        () -> TransactionalKafka.Options.of(options(without), "q"));
    assertEquals("The transactional Kafka sink needs the option 'commits.topic'", error.getMessage());
  }

  @Test
  void rowsAreFoundByColumnName() {
    StructType schema = new StructType().add("partition", DataTypes.IntegerType).add("value", DataTypes.BinaryType)
        .add("key", DataTypes.BinaryType);
    assertArrayEquals(new int[] {2, 1, 0}, TransactionalKafka.rowColumns(schema));
    assertThrows(IllegalArgumentException.class,
        () -> TransactionalKafka.rowColumns(new StructType().add("key", DataTypes.BinaryType)));
  }

  @Test
  void markersAreTheBatchIdAsText() {
    assertEquals("42", new String(Transactions.markerValue(42)));
  }
}
