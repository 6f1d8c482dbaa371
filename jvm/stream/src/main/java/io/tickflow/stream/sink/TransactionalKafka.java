package io.tickflow.stream.sink;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.connector.catalog.SupportsWrite;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.catalog.TableProvider;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.PhysicalWriteInfo;
import org.apache.spark.sql.connector.write.Write;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.connector.write.WriterCommitMessage;
import org.apache.spark.sql.connector.write.streaming.StreamingDataWriterFactory;
import org.apache.spark.sql.connector.write.streaming.StreamingWrite;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A streaming Kafka sink that writes each micro-batch exactly once: what a {@code read_committed} consumer of the
 * topic sees, whatever is killed when.
 *
 * <p>Spark's own Kafka sink is at-least-once: a batch that was written but not yet recorded in the checkpoint's
 * commit log is written again when the query restarts. A Kafka transaction cannot span Spark's tasks, so here each
 * task is one transaction of a producer whose transactional id belongs to its partition of the batch
 * ({@code <prefix>-<partition>}, the prefix naming the query by its checkpoint's id); inside the same transaction the
 * task writes, for each input partition it read, the batch id to the commits topic ({@code commits.topic},
 * compacted, key {@code <prefix>:<input partition>}). Its rows, its dead letters (both held by the fill of the same
 * task: {@code io.tickflow.stream.fill.TaskOutput}) and those markers become visible together or not at all. A
 * replayed batch is not written again for the input partitions whose markers have it, however Spark groups the input
 * partitions into tasks this time:
 *
 * <ul>
 *   <li>when the query starts, the driver fences every transactional id of the query (a process killed mid-batch
 *       left its transactions open: they are aborted now, and its producers can commit nothing more), then reads the
 *       markers once, and gives them to the tasks;
 *   <li>the first attempt of a task skips its batch when the start's marker has it; a task Spark runs again in the
 *       same query (its executor lost, a stage retried) fences its id anew and reads the marker itself, because the
 *       attempt before may have committed.
 * </ul>
 *
 * <p>The writer's rows are the ones {@code tickflow.stream.publish.framed} builds: {@code key}, {@code value} (binary)
 * and {@code partition} (int). Options: {@code topic}, {@code commits.topic}, {@code partitions} (how many partitions
 * a batch can have: the input topic's; each one's id is fenced at start) and the producer's settings prefixed with
 * {@code kafka.}, as Spark's Kafka sink takes them.
 *
 * <pre>
 *   df.writeStream.format("io.tickflow.stream.sink.TransactionalKafka")
 *       .option("topic", "md.enriched").option("commits.topic", "tickflow.stream.commits")
 *       .option("partitions", "12").option("kafka.bootstrap.servers", "...")
 * </pre>
 */
public final class TransactionalKafka implements TableProvider {
  static final StructType SCHEMA =
      new StructType()
          .add("key", DataTypes.BinaryType)
          .add("value", DataTypes.BinaryType)
          .add("partition", DataTypes.IntegerType);

  @Override
  public StructType inferSchema(CaseInsensitiveStringMap options) {
    return SCHEMA;
  }

  @Override
  public boolean supportsExternalMetadata() {
    return true;
  }

  @Override
  public Table getTable(StructType schema, Transform[] partitioning, Map<String, String> properties) {
    return new SinkTable();
  }

  private static final class SinkTable implements Table, SupportsWrite {
    @Override
    public String name() {
      return "tickflow-transactional-kafka";
    }

    @Override
    public StructType schema() {
      return SCHEMA;
    }

    @Override
    public Set<TableCapability> capabilities() {
      return Set.of(TableCapability.STREAMING_WRITE);
    }

    @Override
    public WriteBuilder newWriteBuilder(LogicalWriteInfo info) {
      Options options = Options.of(info.options(), info.queryId());
      int[] columns = rowColumns(info.schema());
      return new WriteBuilder() {
        @Override
        public Write build() {
          return new Write() {
            @Override
            public StreamingWrite toStreaming() {
              return new BatchWrite(options, columns);
            }
          };
        }
      };
    }
  }

  /** The indexes of key, value and partition in the query's rows. */
  static int[] rowColumns(StructType schema) {
    int[] indexes = new int[3];
    String[] names = {"key", "value", "partition"};
    for (int c = 0; c < names.length; c++) {
      int index = java.util.Arrays.asList(schema.fieldNames()).indexOf(names[c]);
      if (index < 0 && c < 2) {
        throw new IllegalArgumentException("The transactional Kafka sink needs a '" + names[c] + "' column");
      }
      indexes[c] = index;
    }
    return indexes;
  }

  /** The sink's options, checked once, when the query starts. */
  record Options(
      String topic, String commitsTopic, int partitions, String prefix, HashMap<String, String> producer)
      implements java.io.Serializable {
    static Options of(CaseInsensitiveStringMap options, String queryId) {
      HashMap<String, String> producer = new HashMap<>();
      for (Map.Entry<String, String> option : options.asCaseSensitiveMap().entrySet()) {
        if (option.getKey().startsWith("kafka.")) {
          producer.put(option.getKey().substring("kafka.".length()), option.getValue());
        }
      }
      for (String required : new String[] {"topic", "commits.topic", "partitions"}) {
        if (options.get(required) == null) {
          throw new IllegalArgumentException("The transactional Kafka sink needs the option '" + required + "'");
        }
      }
      if (!producer.containsKey("bootstrap.servers")) {
        throw new IllegalArgumentException("The transactional Kafka sink needs the option 'kafka.bootstrap.servers'");
      }
      String prefix = options.getOrDefault("transactional.id.prefix", "tickflow-stream") + "-" + queryId;
      return new Options(
          options.get("topic"), options.get("commits.topic"), options.getInt("partitions", 0), prefix, producer);
    }

    String transactionalId(int partition) {
      return prefix + "-" + partition;
    }

    /** The marker key of an input partition: its last batch committed is the value. */
    String marker(int inputPartition) {
      return prefix + ":" + inputPartition;
    }
  }

  /** What a query run learnt when it started: its id for the executors' producers, and the markers then. */
  record Started(String run, HashMap<String, Long> committed) {}

  /** Query runs by transactional prefix and the run's micro-batch thread (its name has the run id). */
  private static final Map<String, Started> STARTED = new java.util.concurrent.ConcurrentHashMap<>();

  /**
   * The query's write. Spark builds one for every micro-batch; the first of a query run (a start, a restart)
   * fences and reads the markers, the next ones of the same run reuse what it found.
   */
  static final class BatchWrite implements StreamingWrite {
    private static final Logger LOG = LoggerFactory.getLogger(BatchWrite.class);

    private final Options options;
    private final int[] columns;
    private final Started started;

    BatchWrite(Options options, int[] columns) {
      this.options = options;
      this.columns = columns;
      String runKey = options.prefix() + "@" + Thread.currentThread().getName();
      this.started = STARTED.computeIfAbsent(runKey, key -> start(options));
    }

    private static Started start(Options options) {
      long began = System.nanoTime();
      Transactions.fence(options.producer(), options.prefix(), options.partitions());
      HashMap<String, Long> committed =
          new HashMap<>(Transactions.committedBatches(options.producer(), options.commitsTopic(), options.prefix()));
      LOG.info("{} transactional ids of {} fenced, {} markers read in {} ms", options.partitions(), options.prefix(),
          committed.size(), (System.nanoTime() - began) / 1_000_000);
      return new Started(UUID.randomUUID().toString(), committed);
    }

    @Override
    public StreamingDataWriterFactory createStreamingWriterFactory(PhysicalWriteInfo info) {
      return new WriterFactory(options, columns, started.run(), started.committed());
    }

    @Override
    public void commit(long epochId, WriterCommitMessage[] messages) {
      // Each task committed its own transaction; the checkpoint's commit log records the batch next.
    }

    @Override
    public void abort(long epochId, WriterCommitMessage[] messages) {
      // The tasks that committed stay committed; their markers keep a replay from writing them again.
    }
  }

  record WriterFactory(Options options, int[] columns, String run, HashMap<String, Long> committed)
      implements StreamingDataWriterFactory {
    @Override
    public org.apache.spark.sql.connector.write.DataWriter<InternalRow> createWriter(
        int partitionId, long taskId, long epochId) {
      return new TransactionalWriter(this, partitionId, epochId);
    }
  }
}
