package io.tickflow.connect.marketevent;

import java.util.zip.CRC32;

/**
 * The partition librdkafka's default partitioner ({@code consistent_random}) picks for a non-empty key:
 * {@code rd_crc32(key) % partition_cnt}, with the standard CRC-32 (the one {@link CRC32} and Python's
 * {@code zlib.crc32} compute) taken as an unsigned 32-bit number.
 *
 * <p>Why: tickflow's Python producers ({@code confluent_kafka}, which sets no {@code partitioner}) use that
 * default, while the Connect worker's Java producer would use murmur2. Without an explicit partition on
 * the record, the same instrument would land on different partitions of {@code md.events} depending on who
 * produced it (e.g. {@code XNAS:AAPL}: 8 from Python, 7 from Java, of 12), and per-instrument order would
 * be lost.
 *
 * <p>How it was checked: the formula is the one in librdkafka's {@code rd_kafka_msg_partitioner_consistent}
 * ({@code rdkafka_msg.c}), which {@code consistent_random} calls for every key longer than zero bytes; the
 * expected partitions in {@code LibrdkafkaPartitionerTest} were computed with Python's
 * {@code zlib.crc32(key.encode()) % 12}, which agrees with the partitions the research note
 * ({@code docs/notes/non-kafka-source.md}, §7) computed. It was not checked against a broker. Empty and null keys
 * are partitioned at random by librdkafka, so they cannot be reproduced and are refused here.
 */
public final class LibrdkafkaPartitioner {

    private LibrdkafkaPartitioner() {
    }

    /**
     * @param key the message key's bytes (for tickflow, the instrument id in UTF-8)
     * @param partitions the topic's partition count
     * @return the partition librdkafka's {@code consistent_random} partitioner would choose
     */
    public static int partition(byte[] key, int partitions) {
        if (partitions < 1) {
            throw new IllegalArgumentException("partitions must be at least 1, got " + partitions);
        }
        if (key == null || key.length == 0) {
            throw new IllegalArgumentException("librdkafka partitions empty and null keys at random; a key is needed");
        }
        CRC32 crc = new CRC32();
        crc.update(key);
        // CRC32.getValue() is already the unsigned 32-bit value in a long
        return (int) (crc.getValue() % partitions);
    }
}
