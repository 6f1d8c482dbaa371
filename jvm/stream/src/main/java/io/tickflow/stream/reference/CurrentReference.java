package io.tickflow.stream.reference;

import java.util.Arrays;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.connector.catalog.SupportsRead;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.catalog.TableProvider;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.read.Batch;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.connector.read.Scan;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Hive reference view ({@code ref.instruments}, {@code ref.fx_rates}) as the live stream joins it: its current
 * rows, valid whatever the event time (the validity columns {@code in_force_from} and {@code in_force_to}, both
 * null, added), read again only when a refresh points the view at a new load.
 *
 * <p>The stream's query is analysed once, when it starts, and a Hive view in its plan would stay the load it named
 * then. This table is read when each micro-batch is planned instead: one metastore call compares the view's text with
 * the one read last, and only a new load runs a query for its rows (a few hundred to a few hundred thousand, kept on
 * the driver). So a refresh shows at the stream's next micro-batch, with no restart. The rows travel to the tasks in
 * the scan's one partition; the enrichment SQL broadcasts them.
 *
 * <pre>
 *   spark.read.format("io.tickflow.stream.reference.CurrentReference")
 *       .option("view", "ref.instruments").option("watch", "ref.instruments,ref.instruments_history").load()
 * </pre>
 *
 * {@code watch} names the views whose texts together say which load {@code view} reads (default: the view alone):
 * a refresh that re-points a view {@code view} reads through changes no text of {@code view} itself.
 *
 * The view's columns are read once, when the table is made: a load with other columns fails the batch with a sentence
 * saying to restart the stream.
 */
public final class CurrentReference implements TableProvider {
  private static final Logger LOG = LoggerFactory.getLogger(CurrentReference.class);
  /** The validity columns, both null: the current attributes apply to every event, late ones included. */
  static final String[] VALIDITY = {"in_force_from", "in_force_to"};

  private record Loaded(String viewText, StructType schema, InternalRow[] rows) {}

  private static final Map<String, Loaded> LOADED = new ConcurrentHashMap<>(); // view -> its load read last
  private static final Map<String, Long> RETRY_AT = new ConcurrentHashMap<>(); // view -> when to ask again (nanoTime)
  static final long RETRY_S = 30;

  @Override
  public StructType inferSchema(CaseInsensitiveStringMap options) {
    return current(view(options), watched(options)).schema();
  }

  @Override
  public Table getTable(StructType schema, Transform[] partitioning, Map<String, String> properties) {
    CaseInsensitiveStringMap options = new CaseInsensitiveStringMap(properties);
    return new ReferenceTable(view(options), watched(options), schema);
  }

  private static String view(CaseInsensitiveStringMap options) {
    String view = options.get("view");
    if (view == null || !view.contains(".")) {
      throw new IllegalArgumentException("CurrentReference needs the option view = <database>.<view>");
    }
    return view;
  }

  private static String[] watched(CaseInsensitiveStringMap options) {
    return options.getOrDefault("watch", view(options)).split(",");
  }

  /**
   * The view's current load: the one read last, or read now if a watched view's text changed since. While the
   * metastore does not answer, the load read last is kept and the metastore asked again only every
   * {@value #RETRY_S} s, so the stream goes on through a metastore outage instead of failing (or waiting out the
   * metastore client's timeouts) every batch.
   */
  static Loaded current(String view, String[] watched) {
    org.apache.spark.sql.classic.SparkSession spark =
        (org.apache.spark.sql.classic.SparkSession) SparkSession.active();
    Loaded loaded = LOADED.get(view);
    Long retryAt = RETRY_AT.get(view);
    if (loaded != null && retryAt != null && System.nanoTime() - retryAt < 0) {
      return loaded;
    }
    String text;
    try {
      text = viewTexts(spark, watched);
    } catch (Exception e) { // the metastore client's errors are Scala exceptions, undeclared
      if (loaded == null) {
        throw e;
      }
      RETRY_AT.put(view, System.nanoTime() + RETRY_S * 1_000_000_000L);
      LOG.warn("the metastore did not answer ({}): reference view {} stays as read last; asking again in {} s",
          e.toString().lines().findFirst().orElse(""), view, RETRY_S);
      return loaded;
    }
    RETRY_AT.remove(view);
    if (loaded != null && loaded.viewText().equals(text)) {
      return loaded;
    }
    org.apache.spark.sql.classic.Dataset<?> rows = spark.table(view);
    StructType schema = rows.schema();
    for (String column : VALIDITY) {
      schema = schema.add(column, DataTypes.TimestampType, true);
    }
    InternalRow[] read = rows.queryExecution().executedPlan().executeCollect();
    InternalRow[] widened = new InternalRow[read.length];
    StructField[] columns = rows.schema().fields();
    for (int r = 0; r < read.length; r++) {
      Object[] cells = new Object[columns.length + VALIDITY.length]; // the validity columns stay null
      for (int c = 0; c < columns.length; c++) {
        cells[c] = read[r].isNullAt(c) ? null : read[r].get(c, columns[c].dataType());
      }
      widened[r] = new GenericInternalRow(cells);
    }
    loaded = new Loaded(text, schema, widened);
    LOADED.put(view, loaded);
    LOG.info("reference view {} read: {} rows", view, read.length);
    return loaded;
  }

  /** The texts of the views that say which load is current (one metastore call each). */
  private static String viewTexts(org.apache.spark.sql.classic.SparkSession spark, String[] watched) {
    StringBuilder texts = new StringBuilder();
    for (String name : watched) {
      String[] parts = name.trim().split("\\.", 2);
      CatalogTable table = spark.sharedState().externalCatalog().getTable(parts[0], parts[1]);
      texts.append(table.viewText().isDefined() ? table.viewText().get() : table.identifier().unquotedString());
      texts.append('\n');
    }
    return texts.toString();
  }

  /** The view as a table of the query's plan; its rows are those current when a batch is planned. */
  static final class ReferenceTable implements Table, SupportsRead {
    private final String view;
    private final String[] watched;
    private final StructType schema;

    ReferenceTable(String view, String[] watched, StructType schema) {
      this.view = view;
      this.watched = watched;
      this.schema = schema;
    }

    @Override
    public String name() {
      return view + " (current)";
    }

    @Override
    public StructType schema() {
      return schema;
    }

    @Override
    public Set<TableCapability> capabilities() {
      return Set.of(TableCapability.BATCH_READ);
    }

    @Override
    public ScanBuilder newScanBuilder(CaseInsensitiveStringMap options) {
      return () -> {
        Loaded loaded = current(view, watched);
        if (!loaded.schema().equals(schema)) {
          throw new IllegalStateException(
              "The reference view " + view + " has other columns since the stream started ("
                  + loaded.schema().simpleString() + "): restart the stream to use them.");
        }
        return new Rows(schema, loaded.rows());
      };
    }
  }

  /** One batch's rows of the view: a scan with one partition that holds them. */
  static final class Rows implements Scan, Batch, InputPartition, PartitionReaderFactory {
    private static final long serialVersionUID = 1L;
    private final StructType schema;
    private final InternalRow[] rows;

    Rows(StructType schema, InternalRow[] rows) {
      this.schema = schema;
      this.rows = rows;
    }

    @Override
    public StructType readSchema() {
      return schema;
    }

    @Override
    public Batch toBatch() {
      return this;
    }

    @Override
    public InputPartition[] planInputPartitions() {
      return new InputPartition[] {this};
    }

    @Override
    public PartitionReaderFactory createReaderFactory() {
      return this;
    }

    @Override
    public PartitionReader<InternalRow> createReader(InputPartition partition) {
      Iterator<InternalRow> each = Arrays.asList(((Rows) partition).rows).iterator();
      return new PartitionReader<>() {
        private InternalRow row;

        @Override
        public boolean next() {
          row = each.hasNext() ? each.next() : null;
          return row != null;
        }

        @Override
        public InternalRow get() {
          return row;
        }

        @Override
        public void close() {}
      };
    }
  }
}
