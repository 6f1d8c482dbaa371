package io.tickflow.stream.sink;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The transactional producers of an executor JVM, one per transactional id, reused batch after batch; fencing; and the
 * commits topic's markers (key: {@code <prefix>:<input partition>}, value: the last batch id whose output of that
 * partition was committed, as decimal text).
 */
final class Transactions {
  /** An open transaction outlives a killed process by at most this long (a new producer of its id aborts it first). */
  static final int TRANSACTION_TIMEOUT_MS = 60_000;

  private static final Duration READ_TIMEOUT = Duration.ofMinutes(2);
  private static final Map<String, Slot> SLOTS = new ConcurrentHashMap<>();

  private Transactions() {}

  /** A transactional id's producer in this JVM, for the query run that made it; one task uses it at a time. */
  static final class Slot {
    final String run;
    final KafkaProducer<byte[], byte[]> producer;
    final ReentrantLock lock = new ReentrantLock();

    Slot(String run, KafkaProducer<byte[], byte[]> producer) {
      this.run = run;
      this.producer = producer;
    }
  }

  static KafkaProducer<byte[], byte[]> producer(Map<String, String> config, String transactionalId) {
    Map<String, Object> props = new HashMap<>(config);
    props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, Integer.toString(TRANSACTION_TIMEOUT_MS));
    props.putIfAbsent(ProducerConfig.CLIENT_ID_CONFIG, transactionalId);
    KafkaProducer<byte[], byte[]> producer =
        new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer());
    try {
      producer.initTransactions(); // aborts what an earlier producer of this id left open, and fences it
    } catch (RuntimeException error) {
      producer.close(Duration.ZERO);
      throw error;
    }
    return producer;
  }

  /**
   * The locked slot of {@code transactionalId} for query run {@code run}: the one this JVM has, or a new producer
   * (which fences every other) when there is none, it belongs to another run, or {@code fresh} is asked.
   */
  static Slot acquire(Map<String, String> config, String transactionalId, String run, boolean fresh) {
    Slot slot = SLOTS.get(transactionalId);
    if (slot != null) {
      slot.lock.lock();
      if (!fresh && slot.run.equals(run) && SLOTS.get(transactionalId) == slot) {
        return slot;
      }
      discard(transactionalId, slot);
    }
    Slot created = new Slot(run, producer(config, transactionalId));
    created.lock.lock();
    SLOTS.put(transactionalId, created);
    return created;
  }

  /** Closes a slot's producer (after a failure: the next task of its id starts a new one) and unlocks it. */
  static void discard(String transactionalId, Slot slot) {
    SLOTS.remove(transactionalId, slot);
    try {
      slot.producer.close(Duration.ZERO);
    } finally {
      if (slot.lock.isHeldByCurrentThread()) {
        slot.lock.unlock();
      }
    }
  }

  /** Fences {@code <prefix>-0} .. {@code <prefix>-(partitions - 1)}: their open transactions are aborted. */
  static void fence(Map<String, String> config, String prefix, int partitions) {
    List<KafkaProducer<byte[], byte[]>> fencing = new ArrayList<>();
    try {
      for (int p = 0; p < partitions; p++) {
        fencing.add(producer(config, prefix + "-" + p));
      }
    } finally {
      for (KafkaProducer<byte[], byte[]> producer : fencing) {
        producer.close(Duration.ZERO);
      }
    }
  }

  static byte[] markerKey(String transactionalId) {
    return transactionalId.getBytes(StandardCharsets.UTF_8);
  }

  static byte[] markerValue(long batchId) {
    return Long.toString(batchId).getBytes(StandardCharsets.UTF_8);
  }

  /**
   * The last batch committed of each marker key starting with {@code prefix}, from the commits topic: read
   * {@code read_committed} up to the end it had when asked, so a transaction still open then is waited for (it
   * commits, or its producer's successor aborts it) rather than missed.
   */
  static Map<String, Long> committedBatches(Map<String, String> config, String topic, String prefix) {
    Map<String, Object> props = connection(config);
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    Map<String, Long> committed = new HashMap<>();
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      List<TopicPartition> partitions = new ArrayList<>();
      List<PartitionInfo> infos = consumer.partitionsFor(topic, READ_TIMEOUT);
      if (infos == null || infos.isEmpty()) {
        throw new IllegalStateException("Kafka has no topic " + topic + ": create it with `tickflow topics create`");
      }
      for (PartitionInfo info : infos) {
        partitions.add(new TopicPartition(topic, info.partition()));
      }
      Map<TopicPartition, Long> ends = logEnds(config, partitions);
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      long deadline = System.nanoTime() + READ_TIMEOUT.toNanos();
      while (partitions.stream().anyMatch(tp -> consumer.position(tp) < ends.get(tp))) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("The commits topic " + topic + " was not read to its end in " + READ_TIMEOUT);
        }
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          String key = new String(record.key(), StandardCharsets.UTF_8);
          if (key.startsWith(prefix)) {
            long batch = Long.parseLong(new String(record.value(), StandardCharsets.UTF_8));
            committed.merge(key, batch, Math::max);
          }
        }
      }
    }
    return committed;
  }

  /** The partitions' log end offsets, open transactions included (what read_committed must read past). */
  private static Map<TopicPartition, Long> logEnds(Map<String, String> config, List<TopicPartition> partitions) {
    Map<String, Object> props = connection(config);
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      return consumer.endOffsets(partitions, READ_TIMEOUT);
    }
  }

  /** The producer settings a consumer shares: where the brokers are and how to log in. */
  private static Map<String, Object> connection(Map<String, String> config) {
    Map<String, Object> props = new HashMap<>();
    config.forEach((key, value) -> {
      if (key.startsWith("bootstrap.") || key.startsWith("security.") || key.startsWith("sasl.")
          || key.startsWith("ssl.")) {
        props.put(key, value);
      }
    });
    return props;
  }
}
