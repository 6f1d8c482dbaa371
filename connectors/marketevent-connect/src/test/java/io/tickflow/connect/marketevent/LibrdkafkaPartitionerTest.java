package io.tickflow.connect.marketevent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class LibrdkafkaPartitionerTest {

    /**
     * Expected values computed with Python: {@code zlib.crc32(key.encode())}, then {@code % 12} and {@code % 3}.
     * XNAS:AAPL and XNYS:JPM are the examples of docs/notes/non-kafka-source.md §7 (murmur2 would give 7 and 11);
     * XNYS:JPM's CRC is above 2^31, so it also checks that the CRC is taken unsigned.
     */
    @ParameterizedTest
    @CsvSource({
        "XNAS:AAPL, 0x07420bec, 8, 2",
        "XNYS:JPM, 0xf3aaa5b0, 4, 1",
        "XNAS:MSFT, 0x5dc2eecb, 11, 2",
        "XLON:VOD, 0x8870ea02, 10, 1",
        "XETR:SAP, 0x537b1c12, 6, 0",
        "XPAR:MC, 0x06b187ad, 5, 2",
        "XTKS:7203, 0xf3ed5702, 2, 2",
        "A, 0xd3d99e8b, 11, 2",
    })
    void matchesPythonZlibCrc32(String key, String crcHex, int of12, int of3) {
        byte[] bytes = key.getBytes(StandardCharsets.UTF_8);
        long crc = Long.parseLong(crcHex.substring(2), 16);
        assertEquals(crc % 12, of12, "the CSV row itself is consistent");
        assertEquals(of12, LibrdkafkaPartitioner.partition(bytes, 12));
        assertEquals(of3, LibrdkafkaPartitioner.partition(bytes, 3));
        assertEquals(0, LibrdkafkaPartitioner.partition(bytes, 1));
    }

    @Test
    void refusesKeysLibrdkafkaWouldPlaceAtRandom() {
        assertThrows(IllegalArgumentException.class, () -> LibrdkafkaPartitioner.partition(new byte[0], 12));
        assertThrows(IllegalArgumentException.class, () -> LibrdkafkaPartitioner.partition(null, 12));
        assertThrows(IllegalArgumentException.class, () -> LibrdkafkaPartitioner.partition(new byte[] {1}, 0));
    }
}
