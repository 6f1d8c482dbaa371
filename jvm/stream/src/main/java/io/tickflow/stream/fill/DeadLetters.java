package io.tickflow.stream.fill;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Sends one task's rejected records to the dead-letter topic: the original key and bytes, with the reason and
 * the source coordinates in headers ({@code reason}, {@code source.topic}, {@code source.partition},
 * {@code source.offset}). {@link #finish} waits until every one is delivered and fails the task otherwise, so a
 * committed micro-batch never lost a dead letter (a replayed one may send some twice).
 *
 * <p>One idempotent producer per executor JVM and client configuration, shared by its tasks (a producer is
 * thread-safe and costs a connection and a buffer).
 *
 * <p>Behind the transactional sink ({@code io.tickflow.stream.sink.TransactionalKafka}) a task's dead letters are
 * {@linkplain TaskOutput held} instead, and go out in the task's transaction with its rows: exactly once.
 */
public final class DeadLetters {
  private static final Map<Map<String, String>, KafkaProducer<byte[], byte[]>> PRODUCERS =
      new ConcurrentHashMap<>();

  private final KafkaProducer<byte[], byte[]> producer;
  private final String topic;
  private final byte[] sourceTopic;
  private final AtomicInteger failed = new AtomicInteger();
  private final List<String> failures = new ArrayList<>();
  private int sent;

  /**
   * @param config Kafka producer settings (bootstrap servers and, in secured mode, the login), as the Spark
   *     Kafka sink's options without their {@code kafka.} prefix
   */
  public DeadLetters(Map<String, String> config, String topic, String sourceTopic) {
    this.producer = PRODUCERS.computeIfAbsent(Map.copyOf(config), DeadLetters::newProducer);
    this.topic = topic;
    this.sourceTopic = sourceTopic.getBytes(StandardCharsets.UTF_8);
  }

  private static KafkaProducer<byte[], byte[]> newProducer(Map<String, String> config) {
    Map<String, Object> props = new HashMap<>(config);
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    return new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer());
  }

  /** A dead letter: the original key and bytes, the reason and the source coordinates in headers. */
  public static ProducerRecord<byte[], byte[]> letter(
      String topic, byte[] sourceTopic, byte[] key, byte[] value, String reason, int partition, long offset) {
    ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(topic, null, key, value);
    record.headers()
        .add(new RecordHeader("reason", reason.getBytes(StandardCharsets.UTF_8)))
        .add(new RecordHeader("source.topic", sourceTopic))
        .add(new RecordHeader("source.partition", Integer.toString(partition).getBytes(StandardCharsets.UTF_8)))
        .add(new RecordHeader("source.offset", Long.toString(offset).getBytes(StandardCharsets.UTF_8)));
    return record;
  }

  /** Queues one dead letter; {@link #finish} waits for it. */
  public void send(byte[] key, byte[] value, String reason, int partition, long offset) {
    ProducerRecord<byte[], byte[]> record = letter(topic, sourceTopic, key, value, reason, partition, offset);
    sent++;
    producer.send(record, (metadata, error) -> {
      if (error != null) {
        failed.incrementAndGet();
        synchronized (failures) {
          if (failures.isEmpty()) {
            failures.add(error.toString());
          }
        }
      }
    });
  }

  /** How many dead letters this task queued. */
  public int sent() {
    return sent;
  }

  /** Waits until everything queued is delivered; throws when any was not (the task fails, Spark retries it). */
  public void finish() {
    if (sent == 0) {
      return;
    }
    producer.flush();
    if (failed.get() > 0) {
      throw new IllegalStateException(failed.get() + " dead letters not delivered to " + topic + ": " + failures);
    }
  }
}
