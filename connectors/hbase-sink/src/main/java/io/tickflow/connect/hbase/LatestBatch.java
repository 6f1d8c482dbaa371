package io.tickflow.connect.hbase;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.hadoop.hbase.client.Put;

/**
 * Conflates the md:latest cells of the records of one {@code put()} call: per instrument and column,
 * only the cell with the greatest timestamp is kept (on a tie, the later record's), so each instrument
 * becomes one Put. HBase would keep the same cell anyway (VERSIONS=1, newest timestamp wins); this just
 * writes less. A cleared register's empty cell is conflated like any other: a newer trade in the batch
 * replaces it, an older one does not.
 */
public final class LatestBatch {

    private final Map<String, Map<String, HCell>> rows = new LinkedHashMap<>();

    public void add(RecordMapper.Mapped mapped) {
        Map<String, HCell> columns = rows.computeIfAbsent(mapped.instrumentId(), k -> new LinkedHashMap<>());
        for (HCell cell : mapped.latestCells()) {
            String column = cell.family() + ':' + cell.qualifier();
            HCell current = columns.get(column);
            if (current == null || cell.timestamp() >= current.timestamp()) {
                columns.put(column, cell);
            }
        }
    }

    public boolean isEmpty() {
        return rows.isEmpty();
    }

    /** Number of instruments (rows) in the batch. */
    public int size() {
        return rows.size();
    }

    /** The kept cells per instrument id, in first-seen order. */
    public Map<String, List<HCell>> rows() {
        Map<String, List<HCell>> out = new LinkedHashMap<>();
        rows.forEach((id, cols) -> out.put(id, Collections.unmodifiableList(new ArrayList<>(cols.values()))));
        return Collections.unmodifiableMap(out);
    }

    /** One Put per instrument; instruments whose records had no latest cell are left out. */
    public List<Put> toPuts() {
        List<Put> puts = new ArrayList<>(rows.size());
        for (Map.Entry<String, Map<String, HCell>> row : rows.entrySet()) {
            if (row.getValue().isEmpty()) {
                continue;
            }
            Put put = new Put(row.getKey().getBytes(StandardCharsets.UTF_8));
            for (HCell c : row.getValue().values()) {
                put.addColumn(c.familyBytes(), c.qualifierBytes(), c.timestamp(), c.value());
            }
            puts.add(put);
        }
        return puts;
    }

    private static final byte[] HISTORY_FAMILY = RecordMapper.FAMILY_HISTORY.getBytes(StandardCharsets.UTF_8);
    private static final byte[] HISTORY_QUALIFIER = RecordMapper.QUALIFIER_HISTORY.getBytes(StandardCharsets.UTF_8);

    /**
     * The md:history Put of one record: one cell, {@code h:r} at the event time (ms), whose value is the
     * record's Kafka value as received, handed over without a copy or a re-encoding.
     */
    public static Put historyPut(RecordMapper.Mapped mapped) {
        return new Put(mapped.historyRow()).addColumn(HISTORY_FAMILY, HISTORY_QUALIFIER,
                Math.floorDiv(mapped.eventTimeMicros(), 1000L), mapped.historyValue());
    }
}
