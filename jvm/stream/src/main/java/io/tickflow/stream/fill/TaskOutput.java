package io.tickflow.stream.fill;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.spark.TaskContext;
import org.apache.spark.util.TaskCompletionListener;
import org.apache.spark.util.TaskFailureListener;

/**
 * What a fill task leaves for the exactly-once sink that runs in the same task
 * ({@code io.tickflow.stream.sink.TransactionalKafka}): which input partition each run of its rows came from, in
 * order, and its dead letters. The sink sends both in the task's transaction and marks each input partition's batch
 * done, so a replay skips exactly the partitions whose output was committed, however Spark grouped the input
 * partitions into tasks then and now.
 *
 * <p>The rows reach the sink in the fill's order, one per filled row: the enrichment SQL only joins each with at most
 * one current reference row (the sink checks the count). A task that ends with its output not taken (a shuffle came
 * between the fill and the sink) fails rather than lose the dead letters.
 */
public final class TaskOutput {
  /** {@code rows} consecutive rows of the task's output, all from input partition {@code partition}. */
  public record Run(int partition, int rows) {}

  /** A dead letter, and the input partition its record came from. */
  public record Letter(int partition, ProducerRecord<byte[], byte[]> record) {}

  private static final Map<Long, TaskOutput> HELD = new ConcurrentHashMap<>();

  private final List<Run> runs;
  private final List<Letter> letters;

  TaskOutput(List<Run> runs, List<Letter> letters) {
    this.runs = List.copyOf(runs);
    this.letters = List.copyOf(letters);
  }

  public List<Run> runs() {
    return runs;
  }

  public List<Letter> letters() {
    return letters;
  }

  /** Every input partition the task read records of (rows, dead letters or both). */
  public Set<Integer> partitions() {
    Set<Integer> partitions = new LinkedHashSet<>();
    runs.forEach(run -> partitions.add(run.partition()));
    letters.forEach(letter -> partitions.add(letter.partition()));
    return partitions;
  }

  public int rows() {
    return runs.stream().mapToInt(Run::rows).sum();
  }

  /** Holds this output for the sink of the running task. */
  void hold() {
    TaskContext context = TaskContext.get();
    if (context == null) {
      throw new IllegalStateException("a fill's output is held only in a Spark task");
    }
    long task = context.taskAttemptId();
    HELD.put(task, this);
    context.addTaskFailureListener((TaskFailureListener) (ctx, error) -> HELD.remove(task));
    context.addTaskCompletionListener((TaskCompletionListener) ctx -> {
      TaskOutput left = HELD.remove(task);
      if (left != null && !left.letters.isEmpty()) {
        throw new IllegalStateException(left.letters.size() + " dead letters of task " + task + " were held for the "
            + "exactly-once sink, which did not run in the same task (no shuffle may come between them)");
      }
    });
  }

  /** The running task's held output, now the sink's; null when no fill ran in this task. */
  public static TaskOutput take() {
    TaskContext context = TaskContext.get();
    return context == null ? null : HELD.remove(context.taskAttemptId());
  }

  /** Collects a task's runs of rows and dead letters. */
  static final class Builder {
    private final List<Run> runs = new ArrayList<>();
    private final List<Letter> letters = new ArrayList<>();

    void rows(int partition, int rows) {
      runs.add(new Run(partition, rows));
    }

    void letter(int partition, ProducerRecord<byte[], byte[]> record) {
      letters.add(new Letter(partition, record));
    }

    TaskOutput build() {
      return new TaskOutput(runs, letters);
    }
  }
}
