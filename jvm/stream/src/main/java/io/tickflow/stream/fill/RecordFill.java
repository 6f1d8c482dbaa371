package io.tickflow.stream.fill;

import io.tickflow.stream.decode.Decoding;
import io.tickflow.stream.decode.EventDecoder;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.LongAccumulator;
import org.apache.spark.util.SerializableConfiguration;

/**
 * The stream's transform up to the enrichment SQL, as one operator of the query's plan: the Kafka source's records
 * in, filled rows out (FILLED_SCHEMA of {@code tickflow.stream.fill_step}), no shuffle. Each task
 *
 * <ol>
 *   <li>decodes and validates its records ({@link EventDecoder}, each registered writer schema resolved into the
 *       reader; an id registered after the query started is read from the registry);
 *   <li>fills the valid ones per Kafka partition (all events of an instrument are on one partition) with the
 *       registers before the batch ({@link StateFiles#prior}), writes the registers after it under the batch id
 *       ({@link StateFiles#write}, through Hadoop's FileSystem: a local path, HDFS or S3A) and prunes the older
 *       files, so a replayed batch reads what its first attempt read;
 *   <li>then sends the rejected ones to the dead-letter topic, original key and bytes with the reason and source
 *       coordinates in headers, delivered before the task ends ({@link DeadLetters}; the backfill only counts them),
 *       or {@linkplain TaskOutput held} for the exactly-once sink of the same task, which sends them in its
 *       transaction.
 * </ol>
 *
 * <p>Being a plain {@code mapPartitions} of the Dataset API, it is part of a streaming query's plan: the query is
 * analysed once, not every micro-batch, and nothing calls back into Python per batch (docs/performance.md). The
 * micro-batch id is the one Spark gives the batch's tasks ({@value #BATCH_ID}); the backfill, a batch query, passes
 * its chunk's number instead.
 */
public final class RecordFill {
  /** The local property Spark's micro-batch execution sets to the batch id for the batch's jobs. */
  public static final String BATCH_ID = "streaming.sql.batchId";

  private RecordFill() {}

  /** The fill fields as the state stores them (an enum's symbol is a string). */
  static FillFields fillFields(Decoding decoding) {
    List<FillFields.Kind> kinds = new ArrayList<>();
    for (EventDecoder.Kind kind : decoding.kinds()) {
      kinds.add(
          switch (kind) {
            case DOUBLE -> FillFields.Kind.DOUBLE;
            case LONG -> FillFields.Kind.LONG;
            case STRING, ENUM -> FillFields.Kind.STRING;
          });
    }
    return new FillFields(decoding.fillFields(), kinds);
  }

  /** What a task returns: FILLED_SCHEMA with every time as a long of µs (the rows stay free of Timestamp objects). */
  static StructType taskSchema(FillFields fields) {
    List<StructField> columns = new ArrayList<>();
    columns.add(DataTypes.createStructField("instrument_id", DataTypes.StringType, true));
    columns.add(DataTypes.createStructField("event_time", DataTypes.LongType, true));
    columns.add(DataTypes.createStructField("event_count", DataTypes.IntegerType, true));
    columns.add(DataTypes.createStructField("ingest_time", DataTypes.LongType, true));
    for (int f = 0; f < fields.size(); f++) {
      DataType type =
          switch (fields.kind(f)) {
            case DOUBLE -> DataTypes.DoubleType;
            case LONG -> DataTypes.LongType;
            case STRING -> DataTypes.StringType;
          };
      columns.add(DataTypes.createStructField(fields.name(f), type, true));
    }
    for (int f = 0; f < fields.size(); f++) {
      columns.add(DataTypes.createStructField(fields.name(f) + "_as_of", DataTypes.LongType, true));
    }
    columns.add(DataTypes.createStructField("batch_id", DataTypes.LongType, true));
    columns.add(DataTypes.createStructField("processed_time", DataTypes.LongType, true));
    return DataTypes.createStructType(columns);
  }

  /**
   * The filled rows of {@code records} (the Kafka source's columns; a stream or a batch), in FILLED_SCHEMA: the batch
   * id and the time the task filled them are columns, not literals, so the plan is the same every batch.
   *
   * @param stateDir the state directory (a Hadoop path or URI: file:, hdfs:, s3a:)
   * @param batchId the batch id the state is written under; negative: the streaming query's micro-batch id
   * @param keepVersions state files kept per partition, at least 2; 0: none deleted (a backfill's scratch state)
   * @param dlqConfig Kafka producer settings of the dead-letter producer (without the {@code kafka.} prefix)
   * @param dlqTopic where rejected records go; null: they are only counted (a backfill re-reads records the stream
   *     already sent there)
   * @param holdOutput true: the task's dead letters and the input partition of each run of its rows are
   *     {@linkplain TaskOutput held} for the exactly-once sink of the same task, which sends the letters in its
   *     transaction, rather than sent by the task
   * @param sourceTopic the input topic, named in each dead letter's headers
   * @param filledRows counts the rows returned (may be null)
   * @param deadLetters counts the rejected records (may be null)
   * @param newestIngest the newest ingest time (µs) of the events filled (may be null)
   */
  public static Dataset<Row> filled(
      Dataset<Row> records,
      Decoding decoding,
      String stateDir,
      long batchId,
      int keepVersions,
      Map<String, String> dlqConfig,
      String dlqTopic,
      boolean holdOutput,
      String sourceTopic,
      LongAccumulator filledRows,
      LongAccumulator deadLetters,
      MaxAccumulator newestIngest) {
    FillFields fields = fillFields(decoding);
    StructType schema = taskSchema(fields);
    SerializableConfiguration conf =
        new SerializableConfiguration(records.sparkSession().sparkContext().hadoopConfiguration());
    Task task =
        new Task(decoding, fields, stateDir, batchId, keepVersions, conf,
            dlqConfig == null ? null : new HashMap<>(dlqConfig), dlqTopic, holdOutput, sourceTopic, filledRows,
            deadLetters, newestIngest);
    Dataset<Row> input =
        records.select(
            functions.col("key"),
            functions.col("value"),
            functions.col("partition"),
            functions.col("offset"),
            functions.unix_micros(functions.col("timestamp")).alias("ingest_time"));
    Dataset<Row> filled = input.mapPartitions(task, Encoders.row(schema));
    List<Column> columns = new ArrayList<>();
    for (StructField field : schema.fields()) {
      Column column = functions.col(field.name());
      boolean time =
          field.name().equals("event_time")
              || field.name().equals("ingest_time")
              || field.name().equals("processed_time")
              || field.name().endsWith("_as_of");
      columns.add(time ? functions.timestamp_micros(column).alias(field.name()) : column);
    }
    return filled.select(columns.toArray(new Column[0]));
  }

  /** The micro-batch id Spark runs this task for. */
  static long streamingBatchId() {
    TaskContext context = TaskContext.get();
    String id = context == null ? null : context.getLocalProperty(BATCH_ID);
    if (id == null) {
      throw new IllegalStateException(
          "RecordFill.filled without a batch id runs only in a streaming query's micro-batch: pass the batch id");
    }
    return Long.parseLong(id);
  }

  /** A rejected record, as the dead-letter topic gets it. */
  private record Rejected(byte[] key, byte[] value, String reason, int partition, long offset) {}

  /** What each task runs: Kafka records in, filled rows out. */
  static final class Task implements MapPartitionsFunction<Row, Row> {
    private static final long serialVersionUID = 1L;

    private final Decoding decoding;
    private final FillFields fields;
    private final String stateDir;
    private final long batchId;
    private final int keepVersions;
    private final SerializableConfiguration conf;
    private final HashMap<String, String> dlqConfig;
    private final String dlqTopic;
    private final boolean holdOutput;
    private final String sourceTopic;
    private final LongAccumulator filledRows;
    private final LongAccumulator deadLetters;
    private final MaxAccumulator newestIngest;

    Task(
        Decoding decoding,
        FillFields fields,
        String stateDir,
        long batchId,
        int keepVersions,
        SerializableConfiguration conf,
        HashMap<String, String> dlqConfig,
        String dlqTopic,
        boolean holdOutput,
        String sourceTopic,
        LongAccumulator filledRows,
        LongAccumulator deadLetters,
        MaxAccumulator newestIngest) {
      this.decoding = decoding;
      this.fields = fields;
      this.stateDir = stateDir;
      this.batchId = batchId;
      this.keepVersions = keepVersions;
      this.conf = conf;
      this.dlqConfig = dlqConfig;
      this.dlqTopic = dlqTopic;
      this.holdOutput = holdOutput;
      this.sourceTopic = sourceTopic;
      this.filledRows = filledRows;
      this.deadLetters = deadLetters;
      this.newestIngest = newestIngest;
    }

    /**
     * Decodes, fills and writes the registers, then sends the rejected records: a task that fails before (the
     * registry or HDFS down, then Spark runs it again) has sent none, so its rerun does not send them twice.
     */
    @Override
    public Iterator<Row> call(Iterator<Row> input) throws IOException {
      long batch = batchId >= 0 ? batchId : streamingBatchId();
      List<Rejected> rejected = new ArrayList<>();
      Map<Integer, List<PartitionFill.Event>> byPartition = decode(input, rejected);
      TaskOutput.Builder held = holdOutput ? new TaskOutput.Builder() : null;
      List<Row> out = byPartition.isEmpty() ? List.of() : fill(byPartition, batch, held);
      if (filledRows != null) {
        filledRows.add(out.size());
      }
      sendDeadLetters(rejected, held);
      if (held != null) {
        held.build().hold();
      }
      return out.iterator();
    }

    private void sendDeadLetters(List<Rejected> rejected, TaskOutput.Builder held) {
      if (rejected.isEmpty()) {
        return;
      }
      if (dlqTopic != null && held != null) {
        byte[] source = sourceTopic.getBytes(StandardCharsets.UTF_8);
        for (Rejected letter : rejected) {
          held.letter(letter.partition(), DeadLetters.letter(dlqTopic, source, letter.key(), letter.value(),
              letter.reason(), letter.partition(), letter.offset()));
        }
      } else if (dlqTopic != null) {
        DeadLetters letters = new DeadLetters(dlqConfig, dlqTopic, sourceTopic);
        for (Rejected letter : rejected) {
          letters.send(letter.key(), letter.value(), letter.reason(), letter.partition(), letter.offset());
        }
        letters.finish(); // delivered before the task ends, or the task fails and Spark runs it again
      }
      if (deadLetters != null) {
        deadLetters.add(rejected.size());
      }
    }

    /** The task's valid events by Kafka partition, in input order; the rejected ones into {@code rejected}. */
    private Map<Integer, List<PartitionFill.Event>> decode(Iterator<Row> input, List<Rejected> rejected) {
      int n = fields.size();
      EventDecoder decoder = decoding.decoder();
      Instant instant = Instant.now();
      long now = Math.addExact(Math.multiplyExact(instant.getEpochSecond(), 1_000_000L), instant.getNano() / 1000);
      Map<Integer, List<PartitionFill.Event>> byPartition = new LinkedHashMap<>();
      long newest = Long.MIN_VALUE;
      while (input.hasNext()) {
        Row row = input.next();
        byte[] key = (byte[]) row.get(0);
        byte[] value = (byte[]) row.get(1);
        int partition = row.getInt(2);
        long offset = row.getLong(3);
        long ingest = row.getLong(4);
        EventDecoder.Result result = decoder.decode(key, value, now);
        if (!result.valid()) {
          rejected.add(new Rejected(key, value, result.reason(), partition, offset));
          continue;
        }
        newest = Math.max(newest, ingest);
        Object[] values = new Object[n];
        for (int f = 0; f < n; f++) {
          if (!result.isNull(f)) {
            values[f] =
                switch (fields.kind(f)) {
                  case DOUBLE -> result.doubleValue(f);
                  case LONG -> result.longValue(f);
                  case STRING -> new String(result.textValue(f), StandardCharsets.UTF_8);
                };
          }
        }
        PartitionFill.Event event =
            new PartitionFill.Event(result.instrumentId(), result.eventKey(), result.eventTime(), offset, ingest,
                values);
        byPartition.computeIfAbsent(partition, p -> new ArrayList<>()).add(event);
      }
      if (newestIngest != null && newest != Long.MIN_VALUE) {
        newestIngest.add(newest);
      }
      return byPartition;
    }

    /** Fills each partition's events on its registers, which it writes back under {@code batch}. */
    private List<Row> fill(Map<Integer, List<PartitionFill.Event>> byPartition, long batch, TaskOutput.Builder held)
        throws IOException {
      int n = fields.size();
      PartitionFill.Cancels cancels = PartitionFill.Cancels.of(fields);
      StateFiles files = new StateFiles(new Path(stateDir), conf.value(), fields);
      long processed = System.currentTimeMillis() * 1000;
      List<Row> out = new ArrayList<>();
      for (Map.Entry<Integer, List<PartitionFill.Event>> part : byPartition.entrySet()) {
        List<PartitionFill.Event> events = part.getValue();
        Set<String> instruments = new LinkedHashSet<>();
        for (PartitionFill.Event event : events) {
          instruments.add(event.instrumentId());
        }
        Map<String, InstrumentState> prior = files.prior(part.getKey(), batch, instruments);
        PartitionFill.Result result = PartitionFill.fill(n, cancels, events, prior);
        Map<String, InstrumentState> after = new HashMap<>(prior);
        after.putAll(result.states());
        files.write(part.getKey(), batch, after);
        if (keepVersions > 0) {
          files.prune(part.getKey(), batch, keepVersions);
        }
        if (held != null) {
          held.rows(part.getKey(), result.rows().size());
        }
        for (PartitionFill.FilledRow filled : result.rows()) {
          Object[] cells = new Object[6 + 2 * n];
          cells[0] = filled.instrumentId();
          cells[1] = filled.eventTime();
          cells[2] = filled.eventCount();
          cells[3] = filled.ingestTime();
          for (int f = 0; f < n; f++) {
            cells[4 + f] = filled.values()[f];
            long asOf = filled.asOf()[f];
            cells[4 + n + f] = asOf == InstrumentState.NEVER ? null : asOf;
          }
          cells[4 + 2 * n] = batch;
          cells[5 + 2 * n] = processed;
          out.add(RowFactory.create(cells));
        }
      }
      return out;
    }
  }
}
