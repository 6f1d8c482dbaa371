package io.tickflow.connect.hbase;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hbase.HBaseConfiguration;
import org.apache.hadoop.hbase.TableName;
import org.apache.hadoop.hbase.client.Admin;
import org.apache.hadoop.hbase.client.BufferedMutator;
import org.apache.hadoop.hbase.client.BufferedMutatorParams;
import org.apache.hadoop.hbase.client.Connection;
import org.apache.hadoop.hbase.client.ConnectionFactory;
import org.apache.hadoop.hbase.client.Put;
import org.apache.hadoop.hbase.client.RegionLocator;

/**
 * HBase's own client writing prepared Puts, with nothing of tickflow's in the way: the ceiling the HBase sink is
 * measured against ({@code bench/pipeline_bench.py}, which writes the cells file). Test scope, so it ships with
 * nothing; it uses no class of the sink.
 *
 * <p>The file holds Puts per lane (one lane per sink task) and table, in the order to write them (the bench's: a
 * backlog's md:history Puts, as the sink makes them, and each instrument's final md:latest row). Every lane gets
 * its own connection and one BufferedMutator per table, each fed by a thread of its own, as a sink task feeds
 * md:history from its task thread and md:latest from its timer (the sink's write buffer and periodic flush;
 * durability as the tables say, i.e. the WAL, as the sink's Puts). All Puts are read and built before the clock starts, the region
 * locations are looked up beforehand, and every mutator writes the first quarter of its Puts untimed (a fresh
 * JVM's client is interpreted code at first, the sink's Connect worker is warm); the tables' memstores are then
 * flushed, and the clock runs until every mutator has written and flushed all its Puts. Prints one JSON line:
 * {@code {"events": history Puts, "puts": ..., "cells": ..., "lanes": ..., "seconds": ..., "rate": events/s,
 * "untimed_seconds": the warm-up and the flush}}.
 *
 * <p>{@code flush} only flushes the two tables' memstores (Admin.flush, which waits for it), so that a contender
 * measured after this one does not start with a memstore this one filled.
 *
 * <pre>
 * java -cp &lt;test classpath&gt; io.tickflow.connect.hbase.PutCeiling write CELLS ZK_HOST ZK_PORT LATEST_TABLE
 *     HISTORY_TABLE WRITE_BUFFER_BYTES PERIODIC_FLUSH_MS
 * java -cp &lt;test classpath&gt; io.tickflow.connect.hbase.PutCeiling flush ZK_HOST ZK_PORT LATEST_TABLE HISTORY_TABLE
 * </pre>
 *
 * <p>File format (big-endian): int lanes, int puts; per Put: byte lane, byte table (0 latest, 1 history), int row
 * length, row, int cells; per cell: short family length, family, short qualifier length, qualifier, long
 * timestamp (ms), int value length, value.
 */
public final class PutCeiling {

    private static final int HISTORY = 1;
    private static final int TABLES = 2;
    private static final double WARM_FRACTION = 0.25;

    private PutCeiling() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 5 && args[0].equals("flush")) {
            flush(configuration(args[1], args[2]), tables(args[3], args[4]));
            return;
        }
        if (args.length != 8 || !args[0].equals("write")) {
            System.err.println("usage: PutCeiling write CELLS ZK_HOST ZK_PORT LATEST_TABLE HISTORY_TABLE "
                    + "WRITE_BUFFER_BYTES PERIODIC_FLUSH_MS\n       PutCeiling flush ZK_HOST ZK_PORT LATEST_TABLE "
                    + "HISTORY_TABLE");
            System.exit(2);
        }
        Configuration conf = configuration(args[2], args[3]);
        conf.set("hbase.client.write.buffer.periodicflush.timeout.ms", args[7]);
        TableName[] tables = tables(args[4], args[5]);
        long writeBuffer = Long.parseLong(args[6]);

        List<List<List<Put>>> lanes = read(Path.of(args[1])); // lane -> table -> Puts in file order
        long puts = 0;
        long cells = 0;
        for (List<List<Put>> lane : lanes) {
            for (List<Put> table : lane) {
                puts += table.size();
                for (Put put : table) {
                    cells += put.size();
                }
            }
        }
        long events = lanes.stream().mapToLong(lane -> lane.get(HISTORY).size()).sum();

        List<Connection> connections = new ArrayList<>();
        List<BufferedMutator> mutators = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(lanes.size() * TABLES);
        try {
            CountDownLatch warm = new CountDownLatch(lanes.size() * TABLES);
            CountDownLatch go = new CountDownLatch(1);
            List<Future<Long>> done = new ArrayList<>();
            for (List<List<Put>> lane : lanes) {
                Connection connection = ConnectionFactory.createConnection(conf);
                connections.add(connection);
                for (int t = 0; t < TABLES; t++) {
                    try (RegionLocator locator = connection.getRegionLocator(tables[t])) {
                        locator.getAllRegionLocations(); // cached by the connection: not part of the timed writes
                    }
                    BufferedMutator mutator = connection.getBufferedMutator(
                            new BufferedMutatorParams(tables[t]).writeBufferSize(writeBuffer));
                    mutators.add(mutator);
                    List<Put> mine = lane.get(t);
                    done.add(pool.submit(writer(mine, mutator, warm, go)));
                }
            }
            long warmStarted = System.nanoTime();
            warm.await();
            flush(conf, tables);
            long started = System.nanoTime();
            go.countDown();
            long finished = started;
            for (Future<Long> writer : done) {
                finished = Math.max(finished, writer.get());
            }
            double seconds = (finished - started) / 1e9;
            System.out.println(String.format(Locale.ROOT,
                    "{\"events\": %d, \"puts\": %d, \"cells\": %d, \"lanes\": %d, \"seconds\": %.3f, "
                            + "\"rate\": %.1f, \"untimed_seconds\": %.3f}",
                    events, puts, cells, lanes.size(), seconds, events / seconds, (started - warmStarted) / 1e9));
        } finally {
            pool.shutdownNow();
            for (BufferedMutator mutator : mutators) {
                mutator.close();
            }
            for (Connection connection : connections) {
                connection.close();
            }
        }
    }

    private static Configuration configuration(String zookeeperHost, String zookeeperPort) {
        Configuration conf = HBaseConfiguration.create();
        conf.set("hbase.zookeeper.quorum", zookeeperHost);
        conf.set("hbase.zookeeper.property.clientPort", zookeeperPort);
        return conf;
    }

    private static TableName[] tables(String latest, String history) {
        return new TableName[] {TableName.valueOf(latest), TableName.valueOf(history)};
    }

    private static void flush(Configuration conf, TableName[] tables) throws IOException {
        try (Connection connection = ConnectionFactory.createConnection(conf); Admin admin = connection.getAdmin()) {
            for (TableName table : tables) {
                admin.flush(table);
            }
        }
    }

    /**
     * Writes the first quarter of {@code puts}, opens {@code warm}, waits for {@code go}, writes them all; the time
     * it flushed.
     */
    private static Callable<Long> writer(List<Put> puts, BufferedMutator mutator, CountDownLatch warm,
            CountDownLatch go) {
        return () -> {
            writeAll(puts.subList(0, (int) Math.ceil(puts.size() * WARM_FRACTION)), mutator);
            warm.countDown();
            go.await();
            writeAll(puts, mutator);
            return System.nanoTime();
        };
    }

    private static void writeAll(List<Put> puts, BufferedMutator mutator) throws IOException {
        for (Put put : puts) {
            mutator.mutate(put);
        }
        mutator.flush();
    }

    private static List<List<List<Put>>> read(Path file) throws IOException {
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(Files.newInputStream(file), 1 << 20))) {
            int laneCount = in.readInt();
            int putCount = in.readInt();
            List<List<List<Put>>> lanes = new ArrayList<>(laneCount);
            for (int i = 0; i < laneCount; i++) {
                List<List<Put>> lane = new ArrayList<>(TABLES);
                for (int t = 0; t < TABLES; t++) {
                    lane.add(new ArrayList<>());
                }
                lanes.add(lane);
            }
            for (int p = 0; p < putCount; p++) {
                List<List<Put>> lane = lanes.get(in.readUnsignedByte());
                int table = in.readUnsignedByte();
                Put put = new Put(bytes(in, in.readInt()));
                int cellCount = in.readInt();
                for (int c = 0; c < cellCount; c++) {
                    byte[] family = bytes(in, in.readShort());
                    byte[] qualifier = bytes(in, in.readShort());
                    long timestamp = in.readLong();
                    put.addColumn(family, qualifier, timestamp, bytes(in, in.readInt()));
                }
                lane.get(table).add(put);
            }
            return lanes;
        }
    }

    private static byte[] bytes(DataInputStream in, int length) throws IOException {
        byte[] out = new byte[length];
        in.readFully(out);
        return out;
    }
}
