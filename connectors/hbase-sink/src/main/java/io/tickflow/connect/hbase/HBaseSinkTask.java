package io.tickflow.connect.hbase;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.avro.generic.GenericRecord;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hbase.HBaseConfiguration;
import org.apache.hadoop.hbase.TableName;
import org.apache.hadoop.hbase.client.Admin;
import org.apache.hadoop.hbase.client.BufferedMutator;
import org.apache.hadoop.hbase.client.BufferedMutatorParams;
import org.apache.hadoop.hbase.client.Connection;
import org.apache.hadoop.hbase.client.ConnectionFactory;
import org.apache.hadoop.hbase.client.Put;
import org.apache.hadoop.hbase.client.RetriesExhaustedWithDetailsException;
import org.apache.hadoop.hbase.client.TableDescriptor;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Decodes md.enriched values, maps them with {@link RecordMapper} and writes them through one
 * BufferedMutator per table: md:latest conflated per {@code put()} call, md:history one cell per record
 * holding the value's bytes as received. Offsets are only committed after both mutators flushed without error:
 * a failed write makes {@link #preCommit} throw, so Connect rewinds to the last committed offsets and
 * delivers the records again (replays write the very same cells).
 */
public class HBaseSinkTask extends SinkTask {

    private static final Logger log = LoggerFactory.getLogger(HBaseSinkTask.class);
    private static final long STATS_INTERVAL_MS = 30_000L;
    private static final long REGISTRY_RETRY_BACKOFF_MS = 5_000L;

    private HBaseSinkConfig config;
    private ConfluentAvroDecoder decoder;
    private final RecordMapper mapper = new RecordMapper();
    private Connection connection;
    private BufferedMutator latestMutator;
    private BufferedMutator historyMutator;
    private ErrantRecordReporter reporter;

    /** Asynchronous write failures since the last flush check; added from HBase client threads. */
    private final Queue<RetriesExhaustedWithDetailsException> writeFailures = new ConcurrentLinkedQueue<>();
    private final AtomicLong failedMutations = new AtomicLong();

    /**
     * md:latest rows conflated across put() calls, handed to HBase every {@code latest.conflate.ms} by
     * {@link #latestTimer} and before every commit; guarded by itself.
     */
    private LatestBatch pendingLatest = new LatestBatch();
    private ScheduledExecutorService latestTimer;

    private long recordsWritten;
    private long recordsRejected;
    private long statsRecords;
    private final AtomicLong statsLatestRows = new AtomicLong();
    private long statsSince;

    @Override
    public String version() {
        return Version.get();
    }

    @Override
    public void start(Map<String, String> props) {
        config = new HBaseSinkConfig(props);
        decoder = new ConfluentAvroDecoder(config.schemaRegistryUrl());

        Configuration conf = HBaseConfiguration.create();
        config.hbaseClientProperties().forEach(conf::set);
        TableName latest = TableName.valueOf(config.latestTable());
        TableName history = TableName.valueOf(config.historyTable());
        try {
            connection = ConnectionFactory.createConnection(conf);
            try (Admin admin = connection.getAdmin()) {
                requireTable(admin, latest, RecordMapper.FAMILY_FILLED, RecordMapper.FAMILY_OTHER);
                requireTable(admin, history, RecordMapper.FAMILY_HISTORY);
            }
            latestMutator = connection.getBufferedMutator(params(latest));
            historyMutator = connection.getBufferedMutator(params(history));
        } catch (IOException e) {
            closeQuietly();
            throw new ConnectException("Could not open the HBase tables through ZooKeeper " + config.zookeeperQuorum() + ":"
                    + config.zookeeperPort() + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            closeQuietly();
            throw e;
        }
        open(config, decoder, latestMutator, historyMutator);
        log.info("HBase sink task {} started: {}, errant record reporter {}", Version.get(), config.summary(),
                reporter == null ? "absent (a bad record fails the task)" : "present");
    }

    /** Wires the task to its decoder and mutators; {@link #start} calls it, and tests call it with fakes. */
    void open(HBaseSinkConfig cfg, ConfluentAvroDecoder dec, BufferedMutator latest, BufferedMutator history) {
        this.config = cfg;
        this.decoder = dec;
        this.latestMutator = latest;
        this.historyMutator = history;
        this.reporter = errantRecordReporter();
        this.statsSince = System.currentTimeMillis();
        long conflateMs = cfg.latestConflateMs();
        if (conflateMs > 0) {
            latestTimer = Executors.newSingleThreadScheduledExecutor(runnable -> {
                Thread thread = new Thread(runnable, "hbase-sink-latest");
                thread.setDaemon(true);
                return thread;
            });
            latestTimer.scheduleWithFixedDelay(this::handOverLatestOnTimer, conflateMs, conflateMs,
                    TimeUnit.MILLISECONDS);
        }
    }

    /**
     * Hands the conflated md:latest rows to the HBase client. Called by the timer, by {@link #put} when
     * conflation is off, and before every flush, so committed offsets never run ahead of md:latest.
     */
    private boolean handOverLatest() throws IOException {
        List<Put> puts;
        synchronized (this) {
            if (pendingLatest.isEmpty()) {
                return false;
            }
            puts = pendingLatest.toPuts();
            pendingLatest = new LatestBatch();
        }
        if (puts.isEmpty()) {
            return false;
        }
        latestMutator.mutate(puts);
        statsLatestRows.addAndGet(puts.size());
        return true;
    }

    /**
     * The timer's hand-over also writes the rows at once: md:latest is what readers see, and its rows are few
     * (one per instrument and interval), so waiting for the client's periodic flush would only add to their age.
     */
    private void handOverLatestOnTimer() {
        try {
            if (handOverLatest()) {
                latestMutator.flush();
            }
        } catch (IOException | RuntimeException e) {
            // the rows' offsets are not committed: preCommit fails, Connect delivers the records again
            writeFailures.add(new RetriesExhaustedWithDetailsException("md:latest hand-over failed: " + e));
            log.error("Handing conflated md:latest rows to HBase failed; their records will be delivered again: {}",
                    e.getMessage());
        }
    }

    private ErrantRecordReporter errantRecordReporter() {
        try {
            return context == null ? null : context.errantRecordReporter();
        } catch (NoSuchMethodError | NoClassDefFoundError e) {
            return null; // a worker older than Kafka 2.6
        }
    }

    private static void requireTable(Admin admin, TableName table, String... families) throws IOException {
        if (!admin.tableExists(table)) {
            throw new ConnectException("HBase table " + table.getNameAsString()
                    + " does not exist; the platform's stack must create it before the sink starts.");
        }
        TableDescriptor descriptor = admin.getDescriptor(table);
        for (String family : families) {
            if (!descriptor.hasColumnFamily(family.getBytes(java.nio.charset.StandardCharsets.UTF_8))) {
                throw new ConnectException("HBase table " + table.getNameAsString() + " has no column family '"
                        + family + "'; the platform's stack must create it before the sink starts.");
            }
        }
    }

    private BufferedMutatorParams params(TableName table) {
        return new BufferedMutatorParams(table)
                .writeBufferSize(config.writeBufferBytes())
                .listener(this::onWriteFailure);
    }

    /** Called by the HBase client when mutations failed for good; never swallowed: see {@link #flushAll}. */
    void onWriteFailure(RetriesExhaustedWithDetailsException e, BufferedMutator mutator) {
        failedMutations.addAndGet(e.getNumExceptions());
        writeFailures.add(e);
        log.error("HBase rejected {} mutation(s) on {}; offsets will not be committed and the records will be "
                + "delivered again: {}", e.getNumExceptions(), mutator.getName(), e.getMessage());
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        if (records.isEmpty()) {
            return;
        }
        // Decode and map the whole batch first: a registry outage (retriable) then throws before
        // anything is written or reported, so the retried batch does not report records twice.
        List<RecordMapper.Mapped> mapped = new ArrayList<>(records.size());
        List<SinkRecord> rejected = new ArrayList<>();
        List<RecordRejectedException> reasons = new ArrayList<>();
        for (SinkRecord record : records) {
            try {
                byte[] raw = valueBytes(record);
                GenericRecord value = decoder.decode(raw);
                mapped.add(mapper.map(value, raw)); // history stores raw as it is: nothing re-encoded
            } catch (RecordRejectedException e) {
                rejected.add(record);
                reasons.add(e);
            } catch (RetriableException e) {
                context.timeout(REGISTRY_RETRY_BACKOFF_MS);
                throw e;
            }
        }
        for (int i = 0; i < rejected.size(); i++) {
            SinkRecord record = rejected.get(i);
            RecordRejectedException reason = reasons.get(i);
            if (reporter == null) {
                throw new DataException("Record " + describe(record) + " cannot be written to HBase: "
                        + reason.getMessage(), reason);
            }
            log.warn("Reporting record {} as errant: {}", describe(record), reason.getMessage());
            reporter.report(record, reason);
            recordsRejected++;
        }

        List<Put> historyPuts = new ArrayList<>(mapped.size());
        for (RecordMapper.Mapped m : mapped) {
            historyPuts.add(LatestBatch.historyPut(m));
        }
        try {
            if (!historyPuts.isEmpty()) {
                historyMutator.mutate(historyPuts);
            }
            synchronized (this) {
                for (RecordMapper.Mapped m : mapped) {
                    pendingLatest.add(m);
                }
            }
            if (latestTimer == null) {
                handOverLatest();
            }
        } catch (IOException e) {
            // the records stay unacknowledged: Connect retries this batch (idempotent writes)
            context.timeout(REGISTRY_RETRY_BACKOFF_MS);
            throw new RetriableException("Could not hand " + mapped.size() + " records to the HBase client: "
                    + e.getMessage(), e);
        }
        recordsWritten += mapped.size();
        statsRecords += mapped.size();
        log.debug("Put {} records ({} rejected): {} history rows", records.size(), rejected.size(),
                historyPuts.size());
        maybeLogStats();
    }

    private static byte[] valueBytes(SinkRecord record) {
        Object value = record.value();
        if (value == null || value instanceof byte[]) {
            return (byte[]) value;
        }
        if (value instanceof ByteBuffer) {
            ByteBuffer b = ((ByteBuffer) value).duplicate();
            byte[] out = new byte[b.remaining()];
            b.get(out);
            return out;
        }
        throw new RecordRejectedException("value is a " + value.getClass().getName()
                + ", expected raw bytes (configure value.converter=ByteArrayConverter)");
    }

    private static String describe(SinkRecord record) {
        return "at topic " + record.topic() + " partition " + record.kafkaPartition() + " offset "
                + record.kafkaOffset();
    }

    @Override
    public void flush(Map<TopicPartition, OffsetAndMetadata> currentOffsets) {
        flushAll();
    }

    @Override
    public Map<TopicPartition, OffsetAndMetadata> preCommit(Map<TopicPartition, OffsetAndMetadata> currentOffsets) {
        // Throwing here keeps Connect from committing: it rewinds to the last committed offsets.
        flushAll();
        return currentOffsets;
    }

    /** Flushes both mutators and fails with {@link RetriableException} if any write since the last check failed. */
    private void flushAll() {
        if (latestMutator == null || historyMutator == null) {
            return;
        }
        IOException flushError = null;
        try {
            handOverLatest();
        } catch (IOException e) {
            flushError = e;
        }
        for (BufferedMutator m : List.of(historyMutator, latestMutator)) {
            try {
                m.flush();
            } catch (IOException e) {
                if (flushError == null) {
                    flushError = e;
                } else {
                    flushError.addSuppressed(e);
                }
            }
        }
        RetriesExhaustedWithDetailsException failure = writeFailures.poll();
        if (failure != null) {
            for (RetriesExhaustedWithDetailsException more = writeFailures.poll(); more != null;
                    more = writeFailures.poll()) {
                failure.addSuppressed(more);
            }
        }
        if (flushError != null || failure != null) {
            long failed = failedMutations.getAndSet(0);
            Exception cause = flushError != null ? flushError : failure;
            if (flushError != null && failure != null) {
                flushError.addSuppressed(failure);
            }
            throw new RetriableException("HBase write failed (" + failed + " mutation(s) rejected), so offsets are "
                    + "not committed and the records since the last commit will be delivered again: "
                    + cause.getMessage(), cause);
        }
        log.debug("Flushed HBase mutators");
        maybeLogStats();
    }

    private void maybeLogStats() {
        long now = System.currentTimeMillis();
        long elapsed = now - statsSince;
        if (elapsed >= STATS_INTERVAL_MS) {
            log.info("HBase sink: {} records written in the last {} s ({} records/s, {} md:latest rows); {} written, "
                    + "{} rejected since start", statsRecords, elapsed / 1000,
                    String.format("%.1f", statsRecords * 1000.0 / elapsed), statsLatestRows.getAndSet(0),
                    recordsWritten, recordsRejected);
            statsRecords = 0;
            statsSince = now;
        }
    }

    @Override
    public void stop() {
        try {
            flushAll();
        } catch (RuntimeException e) {
            log.warn("Final flush failed; the uncommitted records will be delivered again on restart: {}",
                    e.getMessage());
        } finally {
            closeQuietly();
            log.info("HBase sink task stopped: {} records written, {} rejected", recordsWritten, recordsRejected);
        }
    }

    private void closeQuietly() {
        if (latestTimer != null) {
            latestTimer.shutdownNow();
            latestTimer = null;
        }
        for (AutoCloseable c : new AutoCloseable[] {latestMutator, historyMutator, connection}) {
            if (c == null) {
                continue;
            }
            try {
                c.close();
            } catch (Exception e) {
                log.warn("Closing {} failed: {}", c.getClass().getSimpleName(), e.getMessage());
            }
        }
        latestMutator = null;
        historyMutator = null;
        connection = null;
    }
}
