package io.tickflow.stream.fill;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;
import org.apache.spark.util.LongAccumulator;
import org.apache.spark.util.SerializableConfiguration;

/**
 * The fill stage in the JVM: one {@code mapPartitions} over the decoded events ({@code decode.decoded_events}),
 * no shuffle. All events of an instrument are on one Kafka partition and Spark reads each Kafka partition's
 * range in one task, so a task fills its partitions alone: it groups its rows by {@code partition} (a task may
 * hold several, after the stream's coalesce), and per partition reads the registers before the batch
 * ({@link StateFiles#prior}), fills ({@link PartitionFill}) and writes the registers after it
 * ({@link StateFiles#write}) under the batch id, so a replayed batch reads what its first attempt read.
 * Rejected rows (reason not null) are counted and, given a dead-letter topic, sent there from the task
 * ({@link DeadLetters}); the backfill, which has none, only counts them.
 *
 * <p>From PySpark:
 *
 * <pre>
 *   jdf = spark._jvm.io.tickflow.stream.fill.FillOperator.fill(decoded._jdf, state_dir, batch_id, filled, dead)
 *   filled_rows = pyspark.sql.DataFrame(jdf, spark)
 * </pre>
 *
 * with {@code filled}/{@code dead} JVM {@link LongAccumulator}s ({@code spark.sparkContext._jsc.sc().longAccumulator(name)})
 * or None. The result has exactly the schema of {@code fill_step.FILLED_SCHEMA}.
 */
public final class FillOperator {
  private FillOperator() {}

  /** The columns decode.decoded_events always has; every other column is a fill field, in order. */
  public static final Set<String> EVENT_COLUMNS =
      Set.of(
          "partition", "offset", "ingest_time", "reason", "kafka_key", "value", "event_key", "instrument_id",
          "event_time");

  /** The fill fields of a decoded frame: its columns besides {@link #EVENT_COLUMNS}, with their kind. */
  public static FillFields fillFields(StructType decoded) {
    List<String> names = new ArrayList<>();
    List<FillFields.Kind> kinds = new ArrayList<>();
    for (StructField field : decoded.fields()) {
      if (EVENT_COLUMNS.contains(field.name())) {
        continue;
      }
      DataType type = field.dataType();
      names.add(field.name());
      if (type.equals(DataTypes.DoubleType)) {
        kinds.add(FillFields.Kind.DOUBLE);
      } else if (type.equals(DataTypes.LongType)) {
        kinds.add(FillFields.Kind.LONG);
      } else if (type.equals(DataTypes.StringType)) {
        kinds.add(FillFields.Kind.STRING);
      } else {
        throw new IllegalArgumentException("fill field " + field.name() + " has type " + type.simpleString());
      }
    }
    return new FillFields(names, kinds);
  }

  /**
   * FILLED_SCHEMA: what the task returns, as Spark's internal rows (a timestamp is its µs since the epoch there, so
   * the task's times need no conversion).
   */
  static StructType filledSchema(FillFields fields) {
    List<StructField> columns = new ArrayList<>();
    columns.add(DataTypes.createStructField("instrument_id", DataTypes.StringType, true));
    columns.add(DataTypes.createStructField("event_time", DataTypes.TimestampType, true));
    columns.add(DataTypes.createStructField("event_count", DataTypes.IntegerType, true));
    columns.add(DataTypes.createStructField("ingest_time", DataTypes.TimestampType, true));
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
      columns.add(DataTypes.createStructField(fields.name(f) + "_as_of", DataTypes.TimestampType, true));
    }
    columns.add(DataTypes.createStructField("batch_id", DataTypes.LongType, true));
    columns.add(DataTypes.createStructField("processed_time", DataTypes.TimestampType, true));
    return DataTypes.createStructType(columns);
  }

  /**
   * The filled rows of micro-batch {@code batchId}: instrument_id, event_time, event_count, ingest_time, the
   * fill fields and their {@code _as_of} times, batch_id and processed_time (when the task filled them),
   * FILLED_SCHEMA. Both are columns, not literals of the enrichment SQL: a literal is compiled into Spark's
   * generated code, which a new value per batch made Spark compile, and the JIT optimise, again every batch
   * (docs/performance.md). Lazy, like {@code mapInArrow}: the state is
   * read and written when the result is computed, once per action.
   *
   * @param decoded {@code decode.decoded_events} of the batch's Kafka records
   * @param stateDir the state directory (a Hadoop path or URI: file:, hdfs:, s3a:)
   * @param filledRows counts the rows returned (may be null)
   * @param deadLetters counts the rejected records, which are not sent anywhere (may be null)
   */
  public static Dataset<Row> fill(
      Dataset<Row> decoded, String stateDir, long batchId, LongAccumulator filledRows, LongAccumulator deadLetters) {
    return fill(decoded, stateDir, batchId, 0, null, null, null, filledRows, deadLetters, null);
  }

  /**
   * {@link #fill(Dataset, String, long, LongAccumulator, LongAccumulator)} that also sends the rejected records to
   * {@code dlqTopic} ({@link DeadLetters}, delivered before each task ends), keeps the newest ingest time filled,
   * and prunes each partition's state files to the newest {@code keepVersions} ({@link StateFiles#prune}).
   *
   * @param keepVersions state files kept per partition, at least 2; 0: none deleted (a backfill's scratch state)
   * @param dlqConfig Kafka producer settings of the dead-letter producer (without the {@code kafka.} prefix)
   * @param dlqTopic where rejected records go; null: they are only counted (a backfill re-reads records the stream
   *     already sent there)
   * @param sourceTopic the input topic, named in each dead letter's headers
   * @param newestIngest the newest ingest time (µs) of the events filled (may be null)
   */
  public static Dataset<Row> fill(
      Dataset<Row> decoded,
      String stateDir,
      long batchId,
      int keepVersions,
      Map<String, String> dlqConfig,
      String dlqTopic,
      String sourceTopic,
      LongAccumulator filledRows,
      LongAccumulator deadLetters,
      MaxAccumulator newestIngest) {
    FillFields fields = fillFields(decoded.schema());
    List<Column> needed = new ArrayList<>();
    for (String name : List.of("partition", "offset", "ingest_time", "reason", "event_key", "instrument_id", "event_time")) {
      needed.add(functions.col(name));
    }
    for (int f = 0; f < fields.size(); f++) {
      needed.add(functions.col(fields.name(f)));
    }
    needed.add(functions.col("kafka_key"));
    needed.add(functions.col("value"));
    SerializableConfiguration conf =
        new SerializableConfiguration(decoded.sparkSession().sparkContext().hadoopConfiguration());
    Map<String, String> producer = dlqConfig == null ? null : new HashMap<>(dlqConfig);
    Task task = new Task(fields, stateDir, batchId, keepVersions, conf, producer, dlqTopic, sourceTopic, filledRows,
        deadLetters, newestIngest);
    // Spark's internal rows in and out, as the decode does: a Row in and out of a mapPartitions costs two
    // generated conversions of ~50 columns per row, which were a third of the stream's task time
    // (docs/performance.md).
    org.apache.spark.sql.classic.Dataset<Row> selected =
        (org.apache.spark.sql.classic.Dataset<Row>) decoded.select(needed.toArray(new Column[0]));
    StructType output = filledSchema(fields);
    JavaRDD<InternalRow> filled = selected.queryExecution().toRdd().toJavaRDD().mapPartitions(task);
    return selected.sparkSession().internalCreateDataFrame(filled.rdd(), output, false);
  }

  /** What each task runs: rows of the selected decoded columns in, filled rows out. */
  static final class Task implements FlatMapFunction<Iterator<InternalRow>, InternalRow> {
    private static final long serialVersionUID = 1L;
    // positions in the selection made by fill()
    private static final int PARTITION = 0;
    private static final int OFFSET = 1;
    private static final int INGEST_TIME = 2;
    private static final int REASON = 3;
    private static final int EVENT_KEY = 4;
    private static final int INSTRUMENT_ID = 5;
    private static final int EVENT_TIME = 6;
    private static final int FIRST_FIELD = 7;

    private final FillFields fields;
    private final String stateDir;
    private final long batchId;
    private final int keepVersions;
    private final SerializableConfiguration conf;
    private final Map<String, String> dlqConfig;
    private final String dlqTopic;
    private final String sourceTopic;
    private final LongAccumulator filledRows;
    private final LongAccumulator deadLetters;
    private final MaxAccumulator newestIngest;

    Task(
        FillFields fields,
        String stateDir,
        long batchId,
        int keepVersions,
        SerializableConfiguration conf,
        Map<String, String> dlqConfig,
        String dlqTopic,
        String sourceTopic,
        LongAccumulator filledRows,
        LongAccumulator deadLetters,
        MaxAccumulator newestIngest) {
      this.fields = fields;
      this.stateDir = stateDir;
      this.batchId = batchId;
      this.keepVersions = keepVersions;
      this.conf = conf;
      this.dlqConfig = dlqConfig;
      this.dlqTopic = dlqTopic;
      this.sourceTopic = sourceTopic;
      this.filledRows = filledRows;
      this.deadLetters = deadLetters;
      this.newestIngest = newestIngest;
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> input) throws IOException {
      int n = fields.size();
      Map<Integer, List<PartitionFill.Event>> byPartition = new LinkedHashMap<>();
      long rejected = 0;
      long newest = Long.MIN_VALUE;
      DeadLetters letters = dlqTopic == null ? null : new DeadLetters(dlqConfig, dlqTopic, sourceTopic);
      while (input.hasNext()) {
        InternalRow row = input.next();
        if (!row.isNullAt(REASON)) {
          rejected++;
          if (letters != null) {
            letters.send(row.isNullAt(FIRST_FIELD + n) ? null : row.getBinary(FIRST_FIELD + n),
                row.isNullAt(FIRST_FIELD + n + 1) ? null : row.getBinary(FIRST_FIELD + n + 1),
                row.getUTF8String(REASON).toString(), row.getInt(PARTITION), row.getLong(OFFSET));
          }
          continue;
        }
        newest = Math.max(newest, row.getLong(INGEST_TIME));
        Object[] values = new Object[n];
        for (int f = 0; f < n; f++) {
          int column = FIRST_FIELD + f;
          values[f] =
              row.isNullAt(column)
                  ? null
                  : switch (fields.kind(f)) {
                    case DOUBLE -> row.getDouble(column);
                    case LONG -> row.getLong(column);
                    case STRING -> row.getUTF8String(column).toString();
                  };
        }
        PartitionFill.Event event =
            new PartitionFill.Event(
                row.getUTF8String(INSTRUMENT_ID).toString(),
                row.isNullAt(EVENT_KEY) ? null : row.getLong(EVENT_KEY),
                row.getLong(EVENT_TIME),
                row.getLong(OFFSET),
                row.getLong(INGEST_TIME),
                values);
        byPartition.computeIfAbsent(row.getInt(PARTITION), p -> new ArrayList<>()).add(event);
      }
      if (letters != null) {
        letters.finish(); // delivered before the task ends, or the task fails and Spark runs it again
      }
      if (deadLetters != null && rejected > 0) {
        deadLetters.add(rejected);
      }
      if (newestIngest != null && newest != Long.MIN_VALUE) {
        newestIngest.add(newest);
      }
      if (byPartition.isEmpty()) {
        return List.<InternalRow>of().iterator();
      }
      StateFiles files = new StateFiles(new Path(stateDir), conf.value(), fields);
      long processed = System.currentTimeMillis() * 1000;
      List<InternalRow> out = new ArrayList<>();
      for (Map.Entry<Integer, List<PartitionFill.Event>> part : byPartition.entrySet()) {
        List<PartitionFill.Event> events = part.getValue();
        Set<String> instruments = new LinkedHashSet<>();
        for (PartitionFill.Event event : events) {
          instruments.add(event.instrumentId());
        }
        Map<String, InstrumentState> prior = files.prior(part.getKey(), batchId, instruments);
        PartitionFill.Result result = PartitionFill.fill(n, events, prior);
        Map<String, InstrumentState> after = new HashMap<>(prior);
        after.putAll(result.states());
        files.write(part.getKey(), batchId, after);
        if (keepVersions > 0) {
          files.prune(part.getKey(), batchId, keepVersions);
        }
        for (PartitionFill.FilledRow filled : result.rows()) {
          Object[] cells = new Object[6 + 2 * n];
          cells[0] = UTF8String.fromString(filled.instrumentId());
          cells[1] = filled.eventTime();
          cells[2] = filled.eventCount();
          cells[3] = filled.ingestTime();
          for (int f = 0; f < n; f++) {
            Object value = filled.values()[f];
            cells[4 + f] = value instanceof String text ? UTF8String.fromString(text) : value;
            long asOf = filled.asOf()[f];
            cells[4 + n + f] = asOf == InstrumentState.NEVER ? null : asOf;
          }
          cells[4 + 2 * n] = batchId;
          cells[5 + 2 * n] = processed;
          out.add(new GenericInternalRow(cells));
        }
      }
      if (filledRows != null) {
        filledRows.add(out.size());
      }
      return out.iterator();
    }
  }
}
