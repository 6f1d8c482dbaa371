package io.tickflow.connect.hbase;

import static io.tickflow.connect.hbase.TestRecords.INSTRUMENT;
import static io.tickflow.connect.hbase.TestRecords.T0;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;

import org.apache.avro.Schema;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hbase.Cell;
import org.apache.hadoop.hbase.CellUtil;
import org.apache.hadoop.hbase.TableName;
import org.apache.hadoop.hbase.client.BufferedMutator;
import org.apache.hadoop.hbase.client.Mutation;
import org.apache.hadoop.hbase.client.RetriesExhaustedWithDetailsException;
import org.apache.hadoop.hbase.util.Bytes;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.metrics.PluginMetrics;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTaskContext;
import org.junit.jupiter.api.Test;

/** The task's put/commit logic against in-memory mutators: no HBase, no Kafka. */
class HBaseSinkTaskTest {

    private static final Schema SCHEMA = TestRecords.schema();
    private static final int ID = 3;
    private static final String TOPIC = "md.enriched";
    private static final TopicPartition TP = new TopicPartition(TOPIC, 0);

    static final class FakeMutator implements BufferedMutator {
        final String table;
        final List<Mutation> mutations = Collections.synchronizedList(new ArrayList<>());
        int flushes;
        IOException failNextFlush;
        IOException failNextMutate;

        FakeMutator(String table) {
            this.table = table;
        }

        @Override
        public TableName getName() {
            return TableName.valueOf(table);
        }

        @Override
        public Configuration getConfiguration() {
            return new Configuration(false);
        }

        @Override
        public void mutate(Mutation m) {
            mutations.add(m);
        }

        @Override
        public void mutate(List<? extends Mutation> ms) throws IOException {
            if (failNextMutate != null) {
                IOException e = failNextMutate;
                failNextMutate = null;
                throw e;
            }
            mutations.addAll(ms);
        }

        @Override
        public void close() {
        }

        @Override
        public void flush() throws IOException {
            flushes++;
            if (failNextFlush != null) {
                IOException e = failNextFlush;
                failNextFlush = null;
                throw e;
            }
        }
    }

    static final class FakeContext implements SinkTaskContext {
        final ErrantRecordReporter reporter;
        long timeout;

        FakeContext(ErrantRecordReporter reporter) {
            this.reporter = reporter;
        }

        @Override
        public Map<String, String> configs() {
            return Map.of();
        }

        @Override
        public void offset(Map<TopicPartition, Long> offsets) {
        }

        @Override
        public void offset(TopicPartition tp, long offset) {
        }

        @Override
        public void timeout(long timeoutMs) {
            timeout = timeoutMs;
        }

        @Override
        public Set<TopicPartition> assignment() {
            return Set.of(TP);
        }

        @Override
        public void pause(TopicPartition... partitions) {
        }

        @Override
        public void resume(TopicPartition... partitions) {
        }

        @Override
        public void requestCommit() {
        }

        @Override
        public ErrantRecordReporter errantRecordReporter() {
            return reporter;
        }

        @Override
        public PluginMetrics pluginMetrics() {
            return null;
        }
    }

    private final FakeMutator latest = new FakeMutator("md:latest");
    private final FakeMutator history = new FakeMutator("md:history");
    private final List<SinkRecord> reported = new ArrayList<>();
    private final List<Throwable> reasons = new ArrayList<>();

    /** A task that conflates md:latest within each put() call only: what most tests look at. */
    private HBaseSinkTask task(boolean withReporter, ConfluentAvroDecoder.SchemaSource source) {
        return task(withReporter, source, 0);
    }

    private HBaseSinkTask task(boolean withReporter, ConfluentAvroDecoder.SchemaSource source, long conflateMs) {
        ErrantRecordReporter reporter = withReporter ? (record, error) -> {
            reported.add(record);
            reasons.add(error);
            Future<Void> done = CompletableFuture.completedFuture(null);
            return done;
        } : null;
        HBaseSinkTask task = new HBaseSinkTask();
        task.initialize(new FakeContext(reporter));
        task.open(new HBaseSinkConfig(Map.of("schema.registry.url", "http://127.0.0.1:1",
                        HBaseSinkConfig.LATEST_CONFLATE_MS, Long.toString(conflateMs))),
                new ConfluentAvroDecoder(source), latest, history);
        return task;
    }

    private HBaseSinkTask task(boolean withReporter) {
        return task(withReporter, id -> {
            if (id == ID) {
                return SCHEMA;
            }
            throw new RecordRejectedException("schema id " + id + " is unknown");
        });
    }

    private static SinkRecord record(long offset, byte[] value) {
        return new SinkRecord(TOPIC, 0, null, INSTRUMENT, null, value, offset);
    }

    private static byte[] good(String instrument, long eventTime) {
        return TestRecords.framed(ID, TestRecords.full(SCHEMA, instrument, eventTime));
    }

    @Test
    void aBadRecordIsReportedAndTheGoodOnesAroundItAreWritten() {
        HBaseSinkTask task = task(true);
        SinkRecord bad = record(6, new byte[] {1, 2, 3, 4, 5, 6});
        task.put(List.of(record(5, good(INSTRUMENT, T0)), bad, record(7, good(INSTRUMENT, T0 + 10))));

        assertEquals(List.of(bad), reported);
        assertTrue(reasons.get(0).getMessage().contains("magic byte"), reasons.get(0).getMessage());
        assertEquals(2, history.mutations.size(), "every good record goes to history");
        assertEquals(1, latest.mutations.size(), "latest is conflated to one Put per instrument");
        assertArrayEquals(Bytes.toBytes(INSTRUMENT), latest.mutations.get(0).getRow());
    }

    @Test
    void eachHistoryPutIsOneCellWithTheValueBytesAsReceived() {
        HBaseSinkTask task = task(true);
        byte[] first = good(INSTRUMENT, T0 + 999);
        byte[] second = good("XLON:VOD", T0 + 5_000);
        // a converter may hand the value over as a ByteBuffer: the same bytes are stored
        SinkRecord buffered = new SinkRecord(TOPIC, 0, null, "XLON:VOD", null, ByteBuffer.wrap(second.clone()), 6);
        task.put(List.of(record(5, first), buffered));

        assertEquals(2, history.mutations.size());
        assertEquals(List.of(binary(RecordMapper.historyRowKey(INSTRUMENT, T0 + 999)), binary(first), T0 / 1000),
                historyCell(history.mutations.get(0)));
        assertEquals(List.of(binary(RecordMapper.historyRowKey("XLON:VOD", T0 + 5_000)), binary(second),
                (T0 + 5_000) / 1000), historyCell(history.mutations.get(1)));
    }

    private static String binary(byte[] bytes) {
        return Bytes.toStringBinary(bytes);
    }

    /** The one cell of a history Put as [row, value, timestamp], after checking that it is h:r. */
    private static List<Object> historyCell(Mutation m) {
        List<Cell> all = m.getFamilyCellMap().values().stream().flatMap(List::stream).toList();
        assertEquals(1, all.size(), "one cell per record");
        Cell c = all.get(0);
        assertEquals("h:r", Bytes.toString(CellUtil.cloneFamily(c)) + ":"
                + Bytes.toString(CellUtil.cloneQualifier(c)));
        return List.of(binary(m.getRow()), binary(CellUtil.cloneValue(c)), c.getTimestamp());
    }

    @Test
    void withoutAReporterABadRecordFailsNamingTopicPartitionAndOffset() {
        HBaseSinkTask task = task(false);
        DataException e = assertThrows(DataException.class,
                () -> task.put(List.of(record(5, good(INSTRUMENT, T0)), record(6, new byte[] {0, 0}))));
        assertTrue(e.getMessage().contains("topic md.enriched partition 0 offset 6"), e.getMessage());
        assertTrue(e.getMessage().contains("too short"), e.getMessage());
    }

    @Test
    void offsetsAreReturnedOnlyAfterBothTablesFlushed() {
        HBaseSinkTask task = task(true);
        task.put(List.of(record(5, good(INSTRUMENT, T0)), record(6, good("XLON:VOD", T0))));
        Map<TopicPartition, OffsetAndMetadata> offsets = Map.of(TP, new OffsetAndMetadata(7));
        assertSame(offsets, task.preCommit(offsets));
        assertEquals(1, latest.flushes);
        assertEquals(1, history.flushes);
        assertEquals(2, latest.mutations.size());
    }

    @Test
    void aFailedFlushKeepsTheOffsetsUncommitted() {
        HBaseSinkTask task = task(true);
        task.put(List.of(record(5, good(INSTRUMENT, T0))));
        latest.failNextFlush = new IOException("region server gone");
        Map<TopicPartition, OffsetAndMetadata> offsets = Map.of(TP, new OffsetAndMetadata(6));
        RetriableException e = assertThrows(RetriableException.class, () -> task.preCommit(offsets));
        assertTrue(e.getMessage().contains("region server gone"), e.getMessage());
        assertEquals(1, history.flushes, "the other table is flushed all the same");
        assertSame(offsets, task.preCommit(offsets), "a later clean flush commits again");
    }

    @Test
    void anAsynchronousWriteFailureIsNeverLost() {
        HBaseSinkTask task = task(true);
        task.put(List.of(record(5, good(INSTRUMENT, T0))));
        RetriesExhaustedWithDetailsException failure = new RetriesExhaustedWithDetailsException(
                List.of(new IOException("NotServingRegion")), List.of(history.mutations.get(0)), List.of("rs1:16020"));
        task.onWriteFailure(failure, history);
        Map<TopicPartition, OffsetAndMetadata> offsets = Map.of(TP, new OffsetAndMetadata(6));
        RetriableException e = assertThrows(RetriableException.class, () -> task.preCommit(offsets));
        assertTrue(e.getMessage().contains("1 mutation(s) rejected"), e.getMessage());
        assertSame(failure, e.getCause());
        assertSame(offsets, task.preCommit(offsets));
    }

    @Test
    void anUnreachableRegistryRetriesTheBatchWithoutSideEffects() {
        HBaseSinkTask task = task(true, id -> {
            throw new RetriableException("registry down");
        });
        assertThrows(RetriableException.class,
                () -> task.put(List.of(record(5, new byte[] {9}), record(6, good(INSTRUMENT, T0)))));
        assertTrue(reported.isEmpty(), "nothing reported before the retry");
        assertTrue(history.mutations.isEmpty());
        assertTrue(latest.mutations.isEmpty());
    }

    @Test
    void replayingABatchWritesTheSameCells() {
        HBaseSinkTask task = task(true);
        List<SinkRecord> batch = List.of(record(5, good(INSTRUMENT, T0)), record(6, good(INSTRUMENT, T0 + 5)));
        task.put(batch);
        task.put(batch);
        assertEquals(4, history.mutations.size());
        assertEquals(2, latest.mutations.size());
        assertEquals(cells(history.mutations.get(0)), cells(history.mutations.get(2)));
        assertEquals(cells(history.mutations.get(1)), cells(history.mutations.get(3)));
        assertEquals(cells(latest.mutations.get(0)), cells(latest.mutations.get(1)));
    }

    private HBaseSinkTask conflatingTask(long conflateMs) {
        return task(true, id -> SCHEMA, conflateMs);
    }

    @Test
    void latestRowsAreConflatedAcrossPutCallsAndWrittenBeforeTheCommit() {
        HBaseSinkTask task = conflatingTask(3_600_000);
        task.put(List.of(record(5, good(INSTRUMENT, T0))));
        task.put(List.of(record(6, good(INSTRUMENT, T0 + 5)), record(7, good("XLON:VOD", T0))));
        assertEquals(3, history.mutations.size(), "history is handed over with each put");
        assertTrue(latest.mutations.isEmpty(), "latest waits for the conflation interval or a commit");

        Map<TopicPartition, OffsetAndMetadata> offsets = Map.of(TP, new OffsetAndMetadata(8));
        assertSame(offsets, task.preCommit(offsets));
        assertEquals(2, latest.mutations.size(), "one Put per instrument over both put() calls");
        HBaseSinkTask single = task(true);
        FakeMutator conflatedOnce = new FakeMutator("md:latest");
        single.open(new HBaseSinkConfig(Map.of("schema.registry.url", "http://127.0.0.1:1",
                HBaseSinkConfig.LATEST_CONFLATE_MS, "0")), new ConfluentAvroDecoder(id -> SCHEMA), conflatedOnce,
                new FakeMutator("md:history"));
        single.put(List.of(record(5, good(INSTRUMENT, T0)), record(6, good(INSTRUMENT, T0 + 5))));
        assertEquals(cells(conflatedOnce.mutations.get(0)), cells(latest.mutations.get(0)),
                "the same cells as conflating the records in one put() call");
        task.stop();
    }

    @Test
    void theTimerWritesConflatedRowsToHBaseWithoutACommit() throws InterruptedException {
        HBaseSinkTask task = conflatingTask(20);
        task.put(List.of(record(5, good(INSTRUMENT, T0))));
        long deadline = System.currentTimeMillis() + 5_000;
        while (latest.mutations.isEmpty() && System.currentTimeMillis() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(1, latest.mutations.size());
        deadline = System.currentTimeMillis() + 5_000;
        while (latest.flushes == 0 && System.currentTimeMillis() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(1, latest.flushes, "written at once: md:latest is what readers see");
        assertEquals(0, history.flushes, "history cells wait for the client's periodic flush");
        task.stop();
    }

    @Test
    void aFailedHandOverKeepsTheOffsetsUncommitted() {
        HBaseSinkTask task = conflatingTask(3_600_000);
        task.put(List.of(record(5, good(INSTRUMENT, T0))));
        latest.failNextMutate = new IOException("table disabled");
        Map<TopicPartition, OffsetAndMetadata> offsets = Map.of(TP, new OffsetAndMetadata(6));
        RetriableException e = assertThrows(RetriableException.class, () -> task.preCommit(offsets));
        assertTrue(e.getMessage().contains("table disabled"), e.getMessage());
        task.stop();
    }

    /** Every cell of a mutation as row/family:qualifier/timestamp=value, comparable across objects. */
    private static List<String> cells(Mutation m) {
        List<String> out = new ArrayList<>();
        for (List<Cell> family : m.getFamilyCellMap().values()) {
            for (Cell c : family) {
                out.add(Bytes.toStringBinary(CellUtil.cloneRow(c)) + "/" + Bytes.toString(CellUtil.cloneFamily(c))
                        + ":" + Bytes.toString(CellUtil.cloneQualifier(c)) + "/" + c.getTimestamp() + "="
                        + Bytes.toStringBinary(CellUtil.cloneValue(c)));
            }
        }
        return out;
    }
}
