package io.tickflow.stream.sink;

import io.tickflow.stream.fill.TaskOutput;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.spark.TaskContext;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.connector.write.DataWriter;
import org.apache.spark.sql.connector.write.WriterCommitMessage;

/**
 * One task's part of a micro-batch, as one Kafka transaction: its rows, the dead letters its fill held, and a marker
 * per input partition it read saying that partition's batch is committed. The rows and letters of an input partition
 * whose marker already has the batch (a replay) are read and dropped.
 */
final class TransactionalWriter implements DataWriter<InternalRow> {
  /** What the driver learns of a task: records written, and input partitions skipped as already committed. */
  record Written(long rows, int deadLetters, int skipped) implements WriterCommitMessage {}

  private final TransactionalKafka.Options options;
  private final int[] columns;
  private final String transactionalId;
  private final long batchId;
  private final Map<String, Long> committed;
  private Transactions.Slot slot;
  private TaskOutput output;
  private Iterator<TaskOutput.Run> runs;
  private int runLeft;
  private boolean runWritten;
  private boolean began;
  private long seen;
  private long written;

  TransactionalWriter(TransactionalKafka.WriterFactory factory, int partition, long batchId) {
    this.options = factory.options();
    this.columns = factory.columns();
    this.transactionalId = options.transactionalId(partition);
    this.batchId = batchId;
    TaskContext context = TaskContext.get();
    // A task Spark runs again may follow an attempt that committed: only the commits topic can say.
    boolean again = context != null && (context.attemptNumber() > 0 || context.stageAttemptNumber() > 0);
    this.slot = Transactions.acquire(options.producer(), transactionalId, factory.run(), again);
    try {
      this.committed =
          again
              ? Transactions.committedBatches(options.producer(), options.commitsTopic(), options.prefix())
              : factory.committed();
    } catch (RuntimeException error) {
      fail();
      throw error;
    }
  }

  @Override
  public void write(InternalRow row) {
    if (runs == null) {
      start();
    }
    if (output == null) {
      throw new IllegalStateException("The exactly-once sink runs only in the fill's task, right after it "
          + "(RecordFill with its output held; no shuffle between them)");
    }
    while (runLeft == 0) {
      if (!runs.hasNext()) {
        throw new IllegalStateException("The exactly-once sink got more rows than the fill gave: the enrichment SQL "
            + "must return one row per filled row, in order");
      }
      TaskOutput.Run run = runs.next();
      runLeft = run.rows();
      runWritten = !done(run.partition());
    }
    runLeft--;
    seen++;
    if (!runWritten) {
      return;
    }
    byte[] key = row.isNullAt(columns[0]) ? null : row.getBinary(columns[0]);
    byte[] value = row.isNullAt(columns[1]) ? null : row.getBinary(columns[1]);
    Integer partition = columns[2] < 0 || row.isNullAt(columns[2]) ? null : row.getInt(columns[2]);
    send(new ProducerRecord<>(options.topic(), partition, key, value));
    written++;
  }

  @Override
  public WriterCommitMessage commit() {
    if (runs == null) {
      start();
    }
    if (output == null) {
      return new Written(0, 0, 0); // no fill ran: Spark writes an empty batch with one task of its own
    }
    if (seen != output.rows()) {
      throw new IllegalStateException("The exactly-once sink got " + seen + " rows where the fill gave "
          + output.rows() + ": the enrichment SQL must return one row per filled row, in order");
    }
    int letters = 0;
    for (TaskOutput.Letter letter : output.letters()) {
      if (!done(letter.partition())) {
        send(letter.record());
        letters++;
      }
    }
    int skipped = 0;
    for (int partition : output.partitions()) {
      if (done(partition)) {
        skipped++;
      } else {
        send(new ProducerRecord<>(options.commitsTopic(), Transactions.markerKey(options.marker(partition)),
            Transactions.markerValue(batchId)));
      }
    }
    if (began) {
      try {
        slot.producer.commitTransaction(); // delivers everything sent, or throws: the task fails and runs again
      } catch (RuntimeException error) {
        fail();
        throw error;
      }
    }
    return new Written(written, letters, skipped);
  }

  @Override
  public void abort() {
    if (slot == null || !began) {
      return;
    }
    try {
      slot.producer.abortTransaction();
    } catch (RuntimeException error) {
      fail(); // fenced, or Kafka gone: the next task of this id starts a new producer, which aborts it
    }
  }

  @Override
  public void close() {
    if (slot != null && slot.lock.isHeldByCurrentThread()) {
      slot.lock.unlock();
    }
    slot = null;
  }

  /**
   * Takes what the fill of this task held: at the first row the fill has run. None at all: a batch without input
   * partitions, for which Spark runs the write in one empty task.
   */
  private void start() {
    output = TaskOutput.take();
    runs = output == null ? List.<TaskOutput.Run>of().iterator() : output.runs().iterator();
  }

  /** Whether the batch's output of input partition {@code partition} is committed already. */
  private boolean done(int partition) {
    return committed.getOrDefault(options.marker(partition), -1L) >= batchId;
  }

  private void send(ProducerRecord<byte[], byte[]> record) {
    try {
      if (!began) {
        slot.producer.beginTransaction();
        began = true;
      }
      slot.producer.send(record);
    } catch (RuntimeException error) {
      fail();
      throw error;
    }
  }

  /** The producer is left in no state to reuse: drop it. */
  private void fail() {
    if (slot != null) {
      Transactions.discard(transactionalId, slot);
      slot = null;
    }
  }
}
