package io.tickflow.stream.decode;

import java.io.Serializable;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.SpecificInternalRow;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;

/**
 * {@code tickflow.stream.decode.decoded_events} as one JVM operator: each Kafka record through an
 * {@link EventDecoder}, in a {@code mapPartitions} over Spark's internal rows (no conversion to and from
 * {@link Row}), one decoder per task. The result has exactly the columns of {@code decoded_events}:
 * partition, offset, ingest_time (the record's Kafka timestamp, µs), reason, kafka_key and value (only on
 * rejected rows), event_key, instrument_id, event_time (µs) and the fill fields, all nullable. "Now" for the
 * future-time rule is read once per task (Spark SQL's current_timestamp is once per query).
 *
 * <p>From PySpark:
 *
 * <pre>
 *   jdf = spark._jvm.io.tickflow.stream.decode.DecodeOperator.decode(
 *       raw._jdf, json.dumps(reader), writers, list(FILL_FIELDS), max_future_us, crossed_tolerance)
 *   decoded = pyspark.sql.DataFrame(jdf, spark)
 * </pre>
 *
 * with {@code writers} a dict of schema id to writer schema text (Py4J makes it a java.util.Map). The plan
 * below the operator runs as an RDD ({@code queryExecution().toRdd()}), the operator's output comes back as a
 * DataFrame over that RDD: lazy like any DataFrame, computed once per action.
 */
public final class DecodeOperator {
  private DecodeOperator() {}

  /** The columns of the result, for these fill fields of the reader. */
  public static StructType schema(List<String> fillFields, List<EventDecoder.Kind> kinds) {
    List<StructField> columns = new ArrayList<>();
    columns.add(DataTypes.createStructField("partition", DataTypes.IntegerType, true));
    columns.add(DataTypes.createStructField("offset", DataTypes.LongType, true));
    columns.add(DataTypes.createStructField("ingest_time", DataTypes.LongType, true));
    columns.add(DataTypes.createStructField("reason", DataTypes.StringType, true));
    columns.add(DataTypes.createStructField("kafka_key", DataTypes.BinaryType, true));
    columns.add(DataTypes.createStructField("value", DataTypes.BinaryType, true));
    columns.add(DataTypes.createStructField("event_key", DataTypes.LongType, true));
    columns.add(DataTypes.createStructField("instrument_id", DataTypes.StringType, true));
    columns.add(DataTypes.createStructField("event_time", DataTypes.LongType, true));
    for (int f = 0; f < fillFields.size(); f++) {
      DataType type =
          switch (kinds.get(f)) {
            case DOUBLE -> DataTypes.DoubleType;
            case LONG -> DataTypes.LongType;
            case STRING, ENUM -> DataTypes.StringType;
          };
      columns.add(DataTypes.createStructField(fillFields.get(f), type, true));
    }
    return DataTypes.createStructType(columns);
  }

  /** {@link #decode(Dataset, String, Map, List, long, double)} with every optional field of the reader. */
  public static Dataset<Row> decode(
      Dataset<Row> raw, String readerSchema, Map<?, ?> writers, long maxFutureUs, double crossedTolerance) {
    return decode(raw, readerSchema, writers, EventDecoder.optionalFields(readerSchema), maxFutureUs, crossedTolerance);
  }

  /**
   * The Kafka source's records ({@code key}, {@code value}, {@code partition}, {@code offset},
   * {@code timestamp}; other columns are ignored) decoded and validated.
   *
   * @param writers schema id (a number) -> writer schema (JSON)
   * @param fillFields the fields after event_time, in order ({@code tickflow.fill.semantics.FILL_FIELDS})
   */
  public static Dataset<Row> decode(
      Dataset<Row> raw,
      String readerSchema,
      Map<?, ?> writers,
      List<String> fillFields,
      long maxFutureUs,
      double crossedTolerance) {
    if (raw.isStreaming()) {
      throw new IllegalArgumentException(
          "DecodeOperator.decode takes a batch DataFrame (a stream's micro-batch, in foreachBatch), not a stream");
    }
    // made here once, so that a bad schema or field fails on the driver, not in every task
    Decoding decoding = new Decoding(readerSchema, writers, null, fillFields, maxFutureUs, crossedTolerance);
    StructType output = schema(decoding.fillFields(), decoding.kinds());
    StructType input = raw.schema();
    Task task =
        new Task(
            decoding,
            input.fieldIndex("key"),
            input.fieldIndex("value"),
            input.fieldIndex("partition"),
            input.fieldIndex("offset"),
            input.fieldIndex("timestamp"),
            output);
    org.apache.spark.sql.classic.Dataset<Row> classic = (org.apache.spark.sql.classic.Dataset<Row>) raw;
    JavaRDD<InternalRow> decoded = classic.queryExecution().toRdd().toJavaRDD().mapPartitions(task);
    return classic.sparkSession().internalCreateDataFrame(decoded.rdd(), output, false);
  }

  /** One task: its records through one EventDecoder, a row out per record in. */
  static final class Task implements FlatMapFunction<Iterator<InternalRow>, InternalRow>, Serializable {
    private static final long serialVersionUID = 1L;
    private static final int REASON = 3;
    private static final int KAFKA_KEY = 4;
    private static final int VALUE = 5;
    private static final int EVENT_KEY = 6;
    private static final int INSTRUMENT_ID = 7;
    private static final int EVENT_TIME = 8;
    private static final int FIRST_FIELD = 9;

    private final Decoding decoding;
    private final int key;
    private final int value;
    private final int partition;
    private final int offset;
    private final int timestamp;
    private final StructType output;

    Task(
        Decoding decoding,
        int key,
        int value,
        int partition,
        int offset,
        int timestamp,
        StructType output) {
      this.decoding = decoding;
      this.key = key;
      this.value = value;
      this.partition = partition;
      this.offset = offset;
      this.timestamp = timestamp;
      this.output = output;
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> rows) {
      EventDecoder decoder = decoding.decoder();
      Instant instant = Instant.now();
      long now = Math.addExact(Math.multiplyExact(instant.getEpochSecond(), 1_000_000L), instant.getNano() / 1000);
      int n = decoding.fillFields().size();
      EventDecoder.Kind[] kinds = decoding.kinds().toArray(new EventDecoder.Kind[0]);
      // one row, overwritten for each record: Spark copies it into an UnsafeRow before asking for the next
      SpecificInternalRow out = new SpecificInternalRow(output);
      return new Iterator<>() {
        @Override
        public boolean hasNext() {
          return rows.hasNext();
        }

        @Override
        public InternalRow next() {
          InternalRow row = rows.next();
          byte[] keyBytes = row.isNullAt(key) ? null : row.getBinary(key);
          byte[] valueBytes = row.isNullAt(value) ? null : row.getBinary(value);
          copyInt(row, partition, out, 0);
          copyLong(row, offset, out, 1);
          copyLong(row, timestamp, out, 2);
          EventDecoder.Result result = decoder.decode(keyBytes, valueBytes, now);
          if (!result.valid()) {
            out.update(REASON, UTF8String.fromString(result.reason()));
            out.update(KAFKA_KEY, keyBytes);
            out.update(VALUE, valueBytes);
            for (int i = EVENT_KEY; i < FIRST_FIELD + n; i++) {
              out.setNullAt(i);
            }
            return out;
          }
          out.setNullAt(REASON);
          out.setNullAt(KAFKA_KEY);
          out.setNullAt(VALUE);
          out.setLong(EVENT_KEY, result.eventKey());
          out.update(INSTRUMENT_ID, UTF8String.fromBytes(result.instrumentIdBytes()));
          out.setLong(EVENT_TIME, result.eventTime());
          for (int f = 0; f < n; f++) {
            int column = FIRST_FIELD + f;
            if (result.isNull(f)) {
              out.setNullAt(column);
              continue;
            }
            switch (kinds[f]) {
              case DOUBLE -> out.setDouble(column, result.doubleValue(f));
              case LONG -> out.setLong(column, result.longValue(f));
              case STRING, ENUM -> out.update(column, UTF8String.fromBytes(result.textValue(f)));
            }
          }
          return out;
        }
      };
    }

    private static void copyInt(InternalRow row, int from, SpecificInternalRow out, int to) {
      if (row.isNullAt(from)) {
        out.setNullAt(to);
      } else {
        out.setInt(to, row.getInt(from));
      }
    }

    private static void copyLong(InternalRow row, int from, SpecificInternalRow out, int to) {
      if (row.isNullAt(from)) {
        out.setNullAt(to);
      } else {
        out.setLong(to, row.getLong(from));
      }
    }
  }
}
