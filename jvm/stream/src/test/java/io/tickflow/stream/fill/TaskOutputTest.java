package io.tickflow.stream.fill;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Set;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

/** What a fill task leaves for the exactly-once sink: its rows' input partitions, in order, and its letters. */
class TaskOutputTest {
  @Test
  void partitionsAreThoseOfRowsAndOfLettersInOrder() {
    TaskOutput.Builder builder = new TaskOutput.Builder();
    builder.rows(4, 10);
    builder.rows(1, 0);
    builder.rows(7, 3);
    builder.letter(9, new ProducerRecord<>("md.dlq", new byte[] {1}));
    builder.letter(4, new ProducerRecord<>("md.dlq", new byte[] {2}));
    TaskOutput output = builder.build();
    assertEquals(13, output.rows());
    assertEquals(List.of(4, 1, 7, 9), List.copyOf(output.partitions()));
    assertEquals(Set.of(9, 4), Set.of(output.letters().get(0).partition(), output.letters().get(1).partition()));
  }

  @Test
  void nothingIsHeldOutsideATask() {
    assertEquals(null, TaskOutput.take());
  }
}
