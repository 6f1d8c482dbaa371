package io.tickflow.stream.fill;

import java.io.BufferedOutputStream;
import java.io.File;
import java.io.FileNotFoundException;
import java.io.FileOutputStream;
import java.io.IOException;
import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.ChecksumFileSystem;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileAlreadyExistsException;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.parquet.conf.HadoopParquetConfiguration;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.api.InitContext;
import org.apache.parquet.hadoop.api.ReadSupport;
import org.apache.parquet.hadoop.api.WriteSupport;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.hadoop.util.HadoopStreams;
import org.apache.parquet.io.InputFile;
import org.apache.parquet.io.OutputFile;
import org.apache.parquet.io.PositionOutputStream;
import org.apache.parquet.io.SeekableInputStream;
import org.apache.parquet.io.api.Binary;
import org.apache.parquet.io.api.Converter;
import org.apache.parquet.io.api.GroupConverter;
import org.apache.parquet.io.api.PrimitiveConverter;
import org.apache.parquet.io.api.RecordConsumer;
import org.apache.parquet.io.api.RecordMaterializer;
import org.apache.parquet.schema.LogicalTypeAnnotation;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.apache.parquet.schema.Type;
import org.apache.parquet.schema.Types;

/**
 * The fill state's files, the layout of {@code tickflow.fill.state.FillState}, through Hadoop's
 * {@link FileSystem} API so the checkpoint may be on a local disk, HDFS or S3A alike:
 *
 * <pre>
 *   &lt;state dir&gt;/initial.parquet              registers a new checkpoint starts from, optional
 *   &lt;state dir&gt;/p&lt;partition&gt;/&lt;batch&gt;.parquet  every instrument seen on that partition, after that batch
 * </pre>
 *
 * One row per instrument with exactly the columns and types of {@code state.STATE_SCHEMA}: instrument_id
 * (string), per field its value (double, int64 or string), then every {@code <field>_as_of} (int64, µs),
 * then every {@code <field>_offset} (int64), all optional, nulls where a field was never set; zstd like
 * pyarrow's writer there. So the Python readers (state.py, snapshot.py) read what this writes and back.
 *
 * <p>A file is written under a temporary name in its folder and renamed over the final one, so a reader sees
 * a whole file or none. A checksummed file system (Hadoop's {@code file:}) is used through its raw one: no
 * {@code .crc} files beside the state, which pyarrow would neither write nor update.
 *
 * <p>The registers of each partition's file last written by this JVM are kept in memory: the partition's next
 * batch on the same executor (with a steady stream, nearly every batch) takes them from there instead of reading
 * the file back, when the newest file before the batch is still that one (same name, length and modification
 * time). Any other executor, a restart or a replay reads the file. It cost a Parquet read per partition and batch.
 */
public final class StateFiles {
  public static final String INITIAL = "initial.parquet";
  private static final Pattern BATCH_FILE = Pattern.compile("^(-?\\d+)\\.parquet$");

  /** The registers last written per partition folder by this JVM, and the file that holds them. */
  private static final Map<Path, Written> LAST_WRITTEN = new ConcurrentHashMap<>();
  /**
   * The initial layer a restore wrote, per state directory, as this JVM last read it: every partition's task merges
   * it into every batch's registers, and it never changes after the restore (read again only if its file did).
   */
  private static final Map<Path, Written> INITIAL_READ = new ConcurrentHashMap<>();

  private record Written(Path file, long length, long modificationTime, Map<String, InstrumentState> states) {
    boolean isFile(FileStatus status) {
      return file.equals(status.getPath()) && length == status.getLen()
          && modificationTime == status.getModificationTime();
    }
  }

  private final FileSystem fs;
  private final Path directory;
  private final Configuration conf;
  private final FillFields fields;
  private final MessageType schema;

  public StateFiles(Path directory, Configuration conf, FillFields fields) throws IOException {
    FileSystem found = directory.getFileSystem(conf);
    this.fs = found instanceof ChecksumFileSystem checksummed ? checksummed.getRawFileSystem() : found;
    this.directory = fs.makeQualified(directory);
    this.conf = conf;
    this.fields = fields;
    this.schema = schema(fields);
  }

  /** STATE_SCHEMA for {@code fields}, as Parquet (what pyarrow writes for it). */
  public static MessageType schema(FillFields fields) {
    Types.MessageTypeBuilder builder = Types.buildMessage();
    builder.optional(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named("instrument_id");
    for (int f = 0; f < fields.size(); f++) {
      switch (fields.kind(f)) {
        case DOUBLE -> builder.optional(PrimitiveTypeName.DOUBLE).named(fields.name(f));
        case LONG -> builder.optional(PrimitiveTypeName.INT64).named(fields.name(f));
        case STRING ->
            builder.optional(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named(fields.name(f));
      }
    }
    for (int f = 0; f < fields.size(); f++) {
      builder.optional(PrimitiveTypeName.INT64).named(fields.name(f) + "_as_of");
    }
    for (int f = 0; f < fields.size(); f++) {
      builder.optional(PrimitiveTypeName.INT64).named(fields.name(f) + "_offset");
    }
    return builder.named("schema");
  }

  public Path directory() {
    return directory;
  }

  public Path initialPath() {
    return new Path(directory, INITIAL);
  }

  public Path batchPath(int partition, long batchId) {
    return new Path(partitionDir(partition), batchId + ".parquet");
  }

  private Path partitionDir(int partition) {
    return new Path(directory, "p" + partition);
  }

  /** The batch ids with a file for {@code partition}, ascending. */
  public List<Long> batches(int partition) throws IOException {
    List<Long> ids = new ArrayList<>(batchFiles(partition).keySet());
    ids.sort(null);
    return ids;
  }

  /** The partition's batch files by batch id. */
  private Map<Long, FileStatus> batchFiles(int partition) throws IOException {
    FileStatus[] listed;
    try {
      listed = fs.listStatus(partitionDir(partition));
    } catch (FileNotFoundException missing) {
      return Map.of();
    }
    Map<Long, FileStatus> files = new HashMap<>();
    for (FileStatus status : listed) {
      Matcher match = BATCH_FILE.matcher(status.getPath().getName());
      if (match.matches()) {
        files.put(Long.parseLong(match.group(1)), status);
      }
    }
    return files;
  }

  /**
   * The partition's registers before {@code batchId}: every instrument of its newest file older than the
   * batch, with the initial layer merged in for {@code instruments}. A replayed batch reads what its first
   * attempt read.
   */
  public Map<String, InstrumentState> prior(int partition, long batchId, Collection<String> instruments)
      throws IOException {
    Long older = null;
    Map<Long, FileStatus> files = batchFiles(partition);
    for (long id : files.keySet()) {
      if (id < batchId && (older == null || id > older)) {
        older = id;
      }
    }
    Map<String, InstrumentState> states;
    if (older == null) {
      states = new HashMap<>();
    } else {
      FileStatus file = files.get(older);
      Written written = LAST_WRITTEN.get(partitionDir(partition));
      states = written != null && written.isFile(file) ? new HashMap<>(written.states()) : read(file);
    }
    Map<String, InstrumentState> initial = initial();
    if (!initial.isEmpty()) {
      for (String id : instruments) {
        InstrumentState seeded = initial.get(id);
        if (seeded != null) {
          states.put(id, InstrumentState.merge(states.get(id), seeded));
        }
      }
    }
    return states;
  }

  /** Writes the partition's registers after {@code batchId} (replacing the file of an earlier attempt). */
  public void write(int partition, long batchId, Map<String, InstrumentState> states) throws IOException {
    Path file = batchPath(partition, batchId);
    Map<String, InstrumentState> kept = Map.copyOf(states);
    writeAtomically(file, kept);
    FileStatus status = fs.getFileStatus(file);
    LAST_WRITTEN.put(partitionDir(partition),
        new Written(status.getPath(), status.getLen(), status.getModificationTime(), kept));
  }

  /**
   * Deletes the partition's files older than {@code batchId} but the newest {@code keep - 1} of them, so the
   * partition keeps {@code keep} versions with the batch's own. A replay of the batch after this still finds the
   * file before it ({@code keep >= 2}); files of later batches are never touched (a replay overwrites them).
   */
  public void prune(int partition, long batchId, int keep) throws IOException {
    if (keep < 2) {
      throw new IllegalArgumentException("keep must be at least 2 (the batch's file and the one before), not " + keep);
    }
    List<Map.Entry<Long, FileStatus>> older = new ArrayList<>();
    for (Map.Entry<Long, FileStatus> file : batchFiles(partition).entrySet()) {
      if (file.getKey() < batchId) {
        older.add(file);
      }
    }
    older.sort(Map.Entry.comparingByKey());
    for (Map.Entry<Long, FileStatus> file : older.subList(0, Math.max(0, older.size() - (keep - 1)))) {
      fs.delete(file.getValue().getPath(), false);
    }
  }

  /** The registers a new checkpoint starts from. */
  public void seed(Map<String, InstrumentState> states) throws IOException {
    writeAtomically(initialPath(), states);
  }

  /** The initial layer (empty without one), read once per JVM and file version. */
  private Map<String, InstrumentState> initial() throws IOException {
    FileStatus status;
    try {
      status = fs.getFileStatus(initialPath());
    } catch (FileNotFoundException missing) {
      return Map.of();
    }
    Written known = INITIAL_READ.get(directory);
    if (known != null && known.isFile(status)) {
      return known.states();
    }
    Map<String, InstrumentState> states = Map.copyOf(read(status));
    INITIAL_READ.put(directory, new Written(status.getPath(), status.getLen(), status.getModificationTime(), states));
    return states;
  }

  /** The registers of one state file by instrument; empty when there is no such file. */
  public Map<String, InstrumentState> read(Path path) throws IOException {
    FileStatus status;
    try {
      status = fs.getFileStatus(path);
    } catch (FileNotFoundException missing) {
      return new HashMap<>();
    }
    return read(status);
  }

  private Map<String, InstrumentState> read(FileStatus status) throws IOException {
    Map<String, InstrumentState> states = new HashMap<>();
    try (ParquetReader<Map.Entry<String, InstrumentState>> reader =
        new ReaderBuilder(new FsInputFile(fs, status), conf, fields).build()) {
      for (Map.Entry<String, InstrumentState> row = reader.read(); row != null; row = reader.read()) {
        states.put(row.getKey(), row.getValue());
      }
    }
    return states;
  }

  private void writeAtomically(Path target, Map<String, InstrumentState> states) throws IOException {
    fs.mkdirs(target.getParent());
    Path partial = new Path(target.getParent(), "." + target.getName() + "." + UUID.randomUUID() + ".partial");
    try {
      try (ParquetWriter<Map.Entry<String, InstrumentState>> writer =
          new WriterBuilder(new FsOutputFile(fs, partial), schema, fields)
              .withConf(conf)
              .withCompressionCodec(CompressionCodecName.ZSTD)
              .build()) {
        for (Map.Entry<String, InstrumentState> row : new TreeMap<>(states).entrySet()) {
          writer.write(row);
        }
      }
      // Local file systems replace the target; HDFS refuses a rename onto an existing file: then delete the
      // earlier attempt's file first. Only a replay of the same batch writes the same name, and nothing reads
      // a batch's file before the batch committed.
      if (!fs.rename(partial, target)) {
        if (!fs.delete(target, false) || !fs.rename(partial, target)) {
          throw new IOException("could not rename " + partial + " to " + target);
        }
      }
    } catch (IOException | RuntimeException failure) {
      try {
        fs.delete(partial, false);
      } catch (IOException cleanup) {
        failure.addSuppressed(cleanup);
      }
      throw failure;
    }
  }

  // ---- Parquet plumbing: a file of the given FileSystem (not a Path resolved again), and the row codec ----

  private static final class FsOutputFile implements OutputFile {
    private final FileSystem fs;
    private final Path path;

    FsOutputFile(FileSystem fs, Path path) {
      this.fs = fs;
      this.path = path;
    }

    @Override
    public PositionOutputStream create(long blockSizeHint) throws IOException {
      return HadoopStreams.wrap(open(false));
    }

    @Override
    public PositionOutputStream createOrOverwrite(long blockSizeHint) throws IOException {
      return HadoopStreams.wrap(open(true));
    }

    /**
     * Hadoop's local file system gives a new file its permission by forking {@code chmod} when its native
     * library is absent (as from Maven Central), whatever permission is asked for: 40% of the fill tasks'
     * samples at 5k events/s, a fork for every state file written. On {@code file:} the file is opened
     * directly, with the mode this JVM's umask gives any file it writes (Hadoop's default after the usual
     * umask); every other file system (HDFS, S3A) is asked through its own {@code create}.
     */
    private FSDataOutputStream open(boolean overwrite) throws IOException {
      if (fs instanceof RawLocalFileSystem local) {
        File file = local.pathToFile(path);
        if (!overwrite && file.exists()) {
          throw new FileAlreadyExistsException("File already exists: " + path);
        }
        return new FSDataOutputStream(new BufferedOutputStream(new FileOutputStream(file), 64 * 1024), null);
      }
      return fs.create(path, overwrite);
    }

    @Override
    public boolean supportsBlockSize() {
      return false;
    }

    @Override
    public long defaultBlockSize() {
      return 0;
    }

    @Override
    public String getPath() {
      return path.toString();
    }
  }

  private static final class FsInputFile implements InputFile {
    private final FileSystem fs;
    private final FileStatus status;

    FsInputFile(FileSystem fs, FileStatus status) {
      this.fs = fs;
      this.status = status;
    }

    @Override
    public long getLength() {
      return status.getLen();
    }

    @Override
    public SeekableInputStream newStream() throws IOException {
      return HadoopStreams.wrap(fs.open(status.getPath()));
    }

    @Override
    public String toString() {
      return status.getPath().toString();
    }
  }

  private static final class WriterBuilder
      extends ParquetWriter.Builder<Map.Entry<String, InstrumentState>, WriterBuilder> {
    private final MessageType schema;
    private final FillFields fields;

    WriterBuilder(OutputFile file, MessageType schema, FillFields fields) {
      super(file);
      this.schema = schema;
      this.fields = fields;
    }

    @Override
    protected WriterBuilder self() {
      return this;
    }

    @Override
    protected WriteSupport<Map.Entry<String, InstrumentState>> getWriteSupport(Configuration conf) {
      return new StateWriteSupport(schema, fields);
    }
  }

  /** One instrument -> one row of STATE_SCHEMA (nulls, i.e. absent fields, where a field was never set). */
  private static final class StateWriteSupport extends WriteSupport<Map.Entry<String, InstrumentState>> {
    private final MessageType schema;
    private final FillFields fields;
    private RecordConsumer out;

    StateWriteSupport(MessageType schema, FillFields fields) {
      this.schema = schema;
      this.fields = fields;
    }

    @Override
    public WriteContext init(Configuration configuration) {
      return new WriteContext(schema, Map.of());
    }

    @Override
    public void prepareForWrite(RecordConsumer recordConsumer) {
      out = recordConsumer;
    }

    @Override
    public void write(Map.Entry<String, InstrumentState> row) {
      InstrumentState state = row.getValue();
      int n = fields.size();
      out.startMessage();
      if (row.getKey() != null) {
        out.startField("instrument_id", 0);
        out.addBinary(Binary.fromString(row.getKey()));
        out.endField("instrument_id", 0);
      }
      for (int f = 0; f < n; f++) {
        Object value = state.value(f);
        if (state.isSet(f) && value != null) {
          out.startField(fields.name(f), 1 + f);
          switch (fields.kind(f)) {
            case DOUBLE -> out.addDouble(((Number) value).doubleValue());
            case LONG -> out.addLong(((Number) value).longValue());
            case STRING -> out.addBinary(Binary.fromString(value.toString()));
          }
          out.endField(fields.name(f), 1 + f);
        }
      }
      for (int f = 0; f < n; f++) {
        if (state.isSet(f)) {
          out.startField(fields.name(f) + "_as_of", 1 + n + f);
          out.addLong(state.asOf(f));
          out.endField(fields.name(f) + "_as_of", 1 + n + f);
        }
      }
      for (int f = 0; f < n; f++) {
        if (state.isSet(f)) {
          out.startField(fields.name(f) + "_offset", 1 + 2 * n + f);
          out.addLong(state.offset(f));
          out.endField(fields.name(f) + "_offset", 1 + 2 * n + f);
        }
      }
      out.endMessage();
    }
  }

  private static final class ReaderBuilder extends ParquetReader.Builder<Map.Entry<String, InstrumentState>> {
    private final FillFields fields;

    ReaderBuilder(InputFile file, Configuration conf, FillFields fields) {
      // With the task's configuration from the start: the builder without one makes a new Configuration and
      // reads an option from it, which parses Hadoop's default XML resources again for every state file.
      super(file, new HadoopParquetConfiguration(conf));
      this.fields = fields;
    }

    @Override
    protected ReadSupport<Map.Entry<String, InstrumentState>> getReadSupport() {
      return new StateReadSupport(fields);
    }
  }

  /** What a column of a state file holds for the reader. */
  private enum Role {
    ID,
    VALUE,
    AS_OF,
    OFFSET
  }

  /**
   * Rows of a state file -> registers, by column name (a file of another writer may order or add columns):
   * a field is set where its as-of is not null ({@code state.from_table}).
   */
  private static final class StateReadSupport extends ReadSupport<Map.Entry<String, InstrumentState>> {
    private final FillFields fields;

    StateReadSupport(FillFields fields) {
      this.fields = fields;
    }

    @Override
    public ReadContext init(InitContext context) {
      List<Type> known = new ArrayList<>();
      for (Type column : context.getFileSchema().getFields()) {
        if (column.isPrimitive() && role(column.getName()) != null) {
          known.add(column);
        }
      }
      return new ReadContext(new MessageType(context.getFileSchema().getName(), known));
    }

    private Role role(String name) {
      if (name.equals("instrument_id")) {
        return Role.ID;
      }
      if (fields.indexOf(name) >= 0) {
        return Role.VALUE;
      }
      if (name.endsWith("_as_of") && fields.indexOf(name.substring(0, name.length() - 6)) >= 0) {
        return Role.AS_OF;
      }
      if (name.endsWith("_offset") && fields.indexOf(name.substring(0, name.length() - 7)) >= 0) {
        return Role.OFFSET;
      }
      return null;
    }

    private int field(String name, Role role) {
      return switch (role) {
        case ID -> -1;
        case VALUE -> fields.indexOf(name);
        case AS_OF -> fields.indexOf(name.substring(0, name.length() - 6));
        case OFFSET -> fields.indexOf(name.substring(0, name.length() - 7));
      };
    }

    @Override
    public RecordMaterializer<Map.Entry<String, InstrumentState>> prepareForRead(
        Configuration configuration,
        Map<String, String> keyValueMetaData,
        MessageType fileSchema,
        ReadContext readContext) {
      MessageType requested = readContext.getRequestedSchema();
      int n = fields.size();
      Object[] values = new Object[n];
      long[] asOf = new long[n];
      long[] offsets = new long[n];
      String[] id = new String[1];
      Converter[] converters = new Converter[requested.getFieldCount()];
      for (int i = 0; i < converters.length; i++) {
        String name = requested.getFieldName(i);
        Role role = role(name);
        int f = field(name, role);
        converters[i] =
            new PrimitiveConverter() {
              @Override
              public void addBinary(Binary value) {
                if (role == Role.ID) {
                  id[0] = value.toStringUsingUTF8();
                } else if (role == Role.VALUE) {
                  values[f] = value.toStringUsingUTF8();
                }
              }

              @Override
              public void addDouble(double value) {
                if (role == Role.VALUE) {
                  values[f] = value;
                }
              }

              @Override
              public void addLong(long value) {
                switch (role) {
                  case VALUE -> values[f] = value;
                  case AS_OF -> asOf[f] = value;
                  case OFFSET -> offsets[f] = value;
                  case ID -> {}
                }
              }

              @Override
              public void addInt(int value) {
                addLong(value);
              }
            };
      }
      Map.Entry<String, InstrumentState>[] current = newEntryArray();
      GroupConverter root =
          new GroupConverter() {
            @Override
            public Converter getConverter(int fieldIndex) {
              return converters[fieldIndex];
            }

            @Override
            public void start() {
              id[0] = null;
              Arrays.fill(values, null);
              Arrays.fill(asOf, InstrumentState.NEVER);
              Arrays.fill(offsets, InstrumentState.NEVER);
            }

            @Override
            public void end() {
              InstrumentState state = new InstrumentState(n);
              for (int f = 0; f < n; f++) {
                if (asOf[f] != InstrumentState.NEVER) {
                  state.set(f, values[f], asOf[f], offsets[f]);
                }
              }
              current[0] = new AbstractMap.SimpleImmutableEntry<>(id[0], state);
            }
          };
      return new RecordMaterializer<>() {
        @Override
        public Map.Entry<String, InstrumentState> getCurrentRecord() {
          return current[0];
        }

        @Override
        public GroupConverter getRootConverter() {
          return root;
        }
      };
    }

    @SuppressWarnings("unchecked")
    private static Map.Entry<String, InstrumentState>[] newEntryArray() {
      return (Map.Entry<String, InstrumentState>[]) new Map.Entry[1];
    }
  }
}
