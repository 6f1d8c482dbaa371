package io.tickflow.stream.decode;

import java.io.IOException;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.LongFunction;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.ResolvingDecoder;
import org.apache.avro.util.Utf8;
import org.apache.spark.sql.catalyst.expressions.XXH64;
import org.apache.spark.unsafe.Platform;

/**
 * One Kafka record of md.events -> a decoded, validated event or the reason it is rejected: what
 * {@code tickflow.stream.decode.decoded_events} computes in Spark SQL, for one record, with the same reasons
 * (the first failing rule, in the same order, with the same text).
 *
 * <ol>
 *   <li>{@link #NOT_FRAMED}: no magic byte 0 and 4-byte schema id, or no body after them;
 *   <li>{@code unknown schema id N}: the id is not one of the writers given, nor one the writer lookup finds
 *       ({@link #lookUpWritersWith}: the registry, for a version registered after the decoder was made);
 *   <li>{@code N bytes left over after the record (schema id M)}: the body holds a whole record of its writer
 *       schema and N more bytes (counted as Spark counts them: see {@link BoundedBinaryDecoder});
 *   <li>{@code undecodable Avro body for schema id N}: it does not hold a record of its writer schema (cut
 *       short, an index out of range, a length prefix beyond the end: refused without allocating it);
 *   <li>the validation rules of {@code decode._validation_rules}, in order.
 * </ol>
 *
 * A record is read with Avro schema resolution from its writer schema into the reader schema
 * ({@link ResolvingDecoder}), as {@code from_avro(..., avroSchema=reader)} does. The event's fields are kept
 * as Spark has them: strings (and enum symbols) as their UTF-8 bytes, doubles, longs, event_time in µs, and
 * {@code event_key} = Spark's {@code xxhash64(event_id)} (XXH64 of the UTF-8 bytes, seed 42).
 *
 * <p>No Spark session here (only Spark's XXH64). Not thread-safe: {@link #decode} returns the same
 * {@link Result}, overwritten by the next call.
 */
public final class EventDecoder {
  public static final String NOT_FRAMED = "not in the Confluent wire format (no magic byte 0 and schema id)";
  /** The largest size kept: the fill gets nullable longs as doubles, exact only up to 2^53. */
  public static final long MAX_SIZE = 1L << 53;
  /** Spark's seed for {@code xxhash64}. */
  public static final long HASH_SEED = 42L;

  /** How a fill field comes out: a double, a long, or a string (an Avro string or an enum's symbol). */
  public enum Kind {
    DOUBLE,
    LONG,
    STRING,
    ENUM
  }

  private static final int SKIP = -1;
  private static final int EVENT_ID = 0;
  private static final int INSTRUMENT_ID = 1;
  private static final int EVENT_TIME = 2;
  private static final int FIRST_FIELD = 3;

  private final List<String> fieldNames;
  private final Kind[] kinds;
  private final int[] slotOf; // reader field position -> slot (SKIP, EVENT_ID, ..., FIRST_FIELD + f)
  private final byte[][][] symbols; // per slot: an enum's symbols as UTF-8
  private final Schema reader;
  private long[] writerIds;
  private ResolvingDecoder[] resolvers;
  private LongFunction<String> lookup; // schema id -> writer schema (JSON), null when unknown
  private final Map<Long, Integer> missing = new HashMap<>(); // ids looked up in vain: -1 unknown, -2 unresolvable
  private final long maxFutureUs;
  private final double crossedFactor;
  private final String crossedText;
  private final int[] texts; // fill fields validated as UTF-8 (Avro strings)
  private final int[] prices;
  private final int[] sizes;
  private final int bid;
  private final int ask;

  private final BoundedBinaryDecoder in = new BoundedBinaryDecoder();
  private final Result result;
  // the record being read, by slot
  private final boolean[] present;
  private final long[] longs;
  private final double[] doubles;
  private final byte[][] bytes;

  /** Every optional field of the reader (a union of null and one type): the fill fields by default. */
  public static List<String> optionalFields(String readerSchema) {
    List<String> names = new ArrayList<>();
    for (Schema.Field field : new Schema.Parser().parse(readerSchema).getFields()) {
      if (nonNull(field.schema()) != null && field.schema().getType() == Schema.Type.UNION) {
        names.add(field.name());
      }
    }
    return names;
  }

  public EventDecoder(
      String readerSchema, Map<? extends Number, String> writers, long maxFutureUs, double crossedTolerance) {
    this(readerSchema, writers, optionalFields(readerSchema), maxFutureUs, crossedTolerance);
  }

  /**
   * @param readerSchema the reader schema (JSON), into which every record resolves
   * @param writers the writer schema (JSON) of each schema id
   * @param fillFields the fields kept besides event_id, instrument_id and event_time, in this order; each a
   *     double, long, string or enum (or a union of null and one of them) of the reader
   * @param maxFutureUs how far in the future an event_time may be
   * @param crossedTolerance by which fraction of the ask a bid may exceed it
   */
  public EventDecoder(
      String readerSchema,
      Map<? extends Number, String> writers,
      List<String> fillFields,
      long maxFutureUs,
      double crossedTolerance) {
    reader = new Schema.Parser().parse(readerSchema);
    this.fieldNames = List.copyOf(fillFields);
    int n = fieldNames.size();
    int slots = FIRST_FIELD + n;
    kinds = new Kind[n];
    symbols = new byte[slots][][];
    slotOf = new int[reader.getFields().size()];
    Arrays.fill(slotOf, SKIP);
    slotOf[required(reader, "event_id", Schema.Type.STRING).pos()] = EVENT_ID;
    slotOf[required(reader, "instrument_id", Schema.Type.STRING).pos()] = INSTRUMENT_ID;
    slotOf[required(reader, "event_time", Schema.Type.LONG).pos()] = EVENT_TIME;
    List<Integer> textList = new ArrayList<>();
    List<Integer> priceList = new ArrayList<>();
    List<Integer> sizeList = new ArrayList<>();
    for (int f = 0; f < n; f++) {
      Schema.Field field = reader.getField(fieldNames.get(f));
      Schema type = field == null ? null : nonNull(field.schema());
      if (type == null) {
        throw new IllegalArgumentException("fill field " + fieldNames.get(f) + " is not a field of one type");
      }
      if (slotOf[field.pos()] != SKIP) {
        throw new IllegalArgumentException("fill field " + field.name() + " given twice or is an event field");
      }
      slotOf[field.pos()] = FIRST_FIELD + f;
      switch (type.getType()) {
        case DOUBLE -> {
          kinds[f] = Kind.DOUBLE;
          priceList.add(f);
        }
        case LONG -> {
          kinds[f] = Kind.LONG;
          sizeList.add(f);
        }
        case STRING -> {
          kinds[f] = Kind.STRING;
          textList.add(f);
        }
        case ENUM -> {
          kinds[f] = Kind.ENUM;
          symbols[FIRST_FIELD + f] =
              type.getEnumSymbols().stream().map(s -> s.getBytes(StandardCharsets.UTF_8)).toArray(byte[][]::new);
        }
        default -> throw new IllegalArgumentException(
            "fill field " + field.name() + " is a " + type.getType() + ": only double, long, string, enum");
      }
    }
    texts = ints(textList);
    prices = ints(priceList);
    sizes = ints(sizeList);
    bid = fieldNames.indexOf("bid_price");
    ask = fieldNames.indexOf("ask_price");
    if (bid < 0 || ask < 0 || kinds[bid] != Kind.DOUBLE || kinds[ask] != Kind.DOUBLE) {
      throw new IllegalArgumentException("the fill fields need bid_price and ask_price, doubles");
    }

    writerIds = new long[0];
    resolvers = new ResolvingDecoder[0];
    for (Map.Entry<? extends Number, String> writer : writers.entrySet()) {
      addWriter(writer.getKey().longValue(), writer.getValue());
    }

    this.maxFutureUs = maxFutureUs;
    this.crossedFactor = 1 + crossedTolerance;
    this.crossedText = " beyond the " + percent(crossedTolerance) + " tolerance";
    present = new boolean[slots];
    longs = new long[slots];
    doubles = new double[slots];
    bytes = new byte[slots][];
    result = new Result();
  }

  /** Resolves the writer schema of {@code id} into the reader; an id already known is left as it is. */
  private int addWriter(long id, String writerSchema) {
    for (int w = 0; w < writerIds.length; w++) {
      if (writerIds[w] == id) {
        return w;
      }
    }
    ResolvingDecoder resolver;
    try {
      resolver = DecoderFactory.get().resolvingDecoder(new Schema.Parser().parse(writerSchema), reader, in);
    } catch (IOException | RuntimeException e) {
      throw new IllegalArgumentException("writer schema " + id + " does not resolve: " + e, e);
    }
    int w = writerIds.length;
    writerIds = Arrays.copyOf(writerIds, w + 1);
    resolvers = Arrays.copyOf(resolvers, w + 1);
    writerIds[w] = id;
    resolvers[w] = resolver;
    return w;
  }

  /**
   * Asks {@code writerSchemas} (schema id -> writer schema JSON, or null) for an id none of the writers has, once per
   * id and decoder; a schema found is resolved and kept. One that does not resolve into the reader rejects its
   * records as undecodable.
   */
  public EventDecoder lookUpWritersWith(LongFunction<String> writerSchemas) {
    this.lookup = writerSchemas;
    return this;
  }

  /** The writer of {@code id}: its index, or -1 (unknown, or known not to resolve). */
  private int writerOf(long id) {
    for (int w = 0; w < writerIds.length; w++) {
      if (writerIds[w] == id) {
        return w;
      }
    }
    if (lookup == null) {
      return -1;
    }
    Integer known = missing.get(id);
    if (known != null) {
      return known;
    }
    String schema = lookup.apply(id);
    try {
      return schema == null ? missing.computeIfAbsent(id, i -> -1) : addWriter(id, schema);
    } catch (IllegalArgumentException e) {
      missing.put(id, -2);
      return -2;
    }
  }

  private static int[] ints(List<Integer> list) {
    return list.stream().mapToInt(Integer::intValue).toArray();
  }

  private static Schema.Field required(Schema reader, String name, Schema.Type type) {
    Schema.Field field = reader.getField(name);
    if (field == null || field.schema().getType() != type) {
      throw new IllegalArgumentException("the reader schema needs " + name + ", a " + type);
    }
    return field;
  }

  /** The type of a field that is a type or a union of null and one type; null otherwise. */
  private static Schema nonNull(Schema schema) {
    if (schema.getType() != Schema.Type.UNION) {
      return schema;
    }
    Schema other = null;
    for (Schema branch : schema.getTypes()) {
      if (branch.getType() != Schema.Type.NULL) {
        if (other != null) {
          return null;
        }
        other = branch;
      }
    }
    return other;
  }

  /** Python's {@code f"{x:.2%}"}: x * 100 as a double, correctly rounded to 2 places (half even). */
  static String percent(double x) {
    double scaled = x * 100;
    if (Double.isNaN(scaled)) {
      return "nan%";
    }
    if (Double.isInfinite(scaled)) {
      return (scaled < 0 ? "-inf" : "inf") + "%";
    }
    String digits = new BigDecimal(scaled).setScale(2, RoundingMode.HALF_EVEN).toPlainString();
    boolean negative = scaled < 0 || (scaled == 0 && 1 / scaled < 0);
    return (negative && !digits.startsWith("-") ? "-" : "") + digits + "%";
  }

  public List<String> fillFields() {
    return fieldNames;
  }

  public Kind kind(int field) {
    return kinds[field];
  }

  /**
   * The record with this key and value (either may be null), "now" being {@code nowMicros} (µs since the
   * epoch) for the future-time rule. The result is overwritten by the next call.
   */
  public Result decode(byte[] key, byte[] value, long nowMicros) {
    Arrays.fill(present, false);
    Arrays.fill(bytes, null);
    result.reason = null;
    if (value == null || value.length < 6 || value[0] != 0) {
      return result.reject(NOT_FRAMED);
    }
    long id = ((value[1] & 0xffL) << 24) | ((value[2] & 0xffL) << 16) | ((value[3] & 0xffL) << 8) | (value[4] & 0xffL);
    int writer = writerOf(id);
    if (writer == -1) {
      return result.reject("unknown schema id " + id);
    }
    if (writer == -2) {
      return result.reject("undecodable Avro body for schema id " + id);
    }
    in.configure(value, 5, value.length - 5);
    try {
      ResolvingDecoder resolver = resolvers[writer];
      resolver.configure(in);
      for (Schema.Field field : resolver.readFieldOrder()) {
        read(resolver, field.schema(), slotOf[field.pos()]);
      }
      resolver.drain();
    } catch (IOException | RuntimeException e) {
      Arrays.fill(present, false);
      Arrays.fill(bytes, null);
      return result.reject("undecodable Avro body for schema id " + id);
    }
    long extra = in.remaining() + in.nonCanonicalBytes();
    if (extra > 0) {
      Arrays.fill(present, false);
      Arrays.fill(bytes, null);
      return result.reject(extra + " bytes left over after the record (schema id " + id + ")");
    }
    String reason = validate(key, nowMicros);
    if (reason != null) {
      Arrays.fill(present, false);
      Arrays.fill(bytes, null);
      return result.reject(reason);
    }
    byte[] eventId = bytes[EVENT_ID];
    result.eventKey = XXH64.hashUnsafeBytes(eventId, Platform.BYTE_ARRAY_OFFSET, eventId.length, HASH_SEED);
    return result;
  }

  /** One value of the reader type {@code schema}, kept in {@code slot} (or read past: SKIP). */
  private void read(ResolvingDecoder resolver, Schema schema, int slot) throws IOException {
    switch (schema.getType()) {
      case UNION -> read(resolver, schema.getTypes().get(resolver.readIndex()), slot);
      case NULL -> resolver.readNull();
      case BOOLEAN -> resolver.readBoolean();
      case INT -> resolver.readInt();
      case FLOAT -> resolver.readFloat();
      case LONG -> {
        long value = resolver.readLong();
        if (slot != SKIP) {
          longs[slot] = value;
          present[slot] = true;
        }
      }
      case DOUBLE -> {
        double value = resolver.readDouble();
        if (slot != SKIP) {
          doubles[slot] = value;
          present[slot] = true;
        }
      }
      case STRING -> {
        if (slot == SKIP) {
          resolver.skipString();
        } else {
          Utf8 text = resolver.readString(null);
          byte[] value = text.getBytes(); // exactly the string from BoundedBinaryDecoder; a default may be longer
          bytes[slot] = value.length == text.getByteLength() ? value : Arrays.copyOf(value, text.getByteLength());
          present[slot] = true;
        }
      }
      case ENUM -> {
        // ResolvingDecoder returns an index it need not adjust unchecked; Avro's GenericDatumReader (from_avro)
        // then fails to find its symbol
        int index = resolver.readEnum();
        if (index < 0 || index >= schema.getEnumSymbols().size()) {
          throw new AvroRuntimeException("enum index " + index + " out of range for " + schema.getFullName());
        }
        if (slot != SKIP) {
          bytes[slot] = symbols[slot][index];
          present[slot] = true;
        }
      }
      case BYTES -> resolver.skipBytes();
      case FIXED -> resolver.skipFixed(schema.getFixedSize());
      case RECORD -> {
        for (Schema.Field field : resolver.readFieldOrder()) {
          read(resolver, field.schema(), SKIP);
        }
      }
      case ARRAY -> {
        for (long items = resolver.readArrayStart(); items != 0; items = resolver.arrayNext()) {
          for (long i = 0; i < items; i++) {
            read(resolver, schema.getElementType(), SKIP);
          }
        }
      }
      case MAP -> {
        for (long items = resolver.readMapStart(); items != 0; items = resolver.mapNext()) {
          for (long i = 0; i < items; i++) {
            resolver.skipString();
            read(resolver, schema.getValueType(), SKIP);
          }
        }
      }
    }
  }

  /** decode._validation_rules: the first failing rule's reason, null when the event is valid. */
  private String validate(byte[] key, long now) {
    if (!isValidUtf8(bytes[EVENT_ID])) {
      return "event_id is not valid UTF-8";
    }
    if (!isValidUtf8(bytes[INSTRUMENT_ID])) {
      return "instrument_id is not valid UTF-8";
    }
    for (int f : texts) {
      if (present[FIRST_FIELD + f] && !isValidUtf8(bytes[FIRST_FIELD + f])) {
        return fieldNames.get(f) + " is not valid UTF-8";
      }
    }
    byte[] instrument = bytes[INSTRUMENT_ID];
    if (isBlank(instrument)) {
      return "missing instrument_id";
    }
    if (isBlank(bytes[EVENT_ID])) {
      return "missing event_id";
    }
    byte[] keyText = key == null ? new byte[0] : key; // coalesce(cast(key as string), '')
    if (!Arrays.equals(keyText, instrument)) {
      String shown = keyText.length == 0 ? "None" : "'" + new String(keyText, StandardCharsets.UTF_8) + "'";
      return "message key " + shown + " is not the instrument_id '" + new String(instrument, StandardCharsets.UTF_8)
          + "'";
    }
    long eventTime = longs[EVENT_TIME];
    if (eventTime < 0) {
      return "event_time " + eventTime + " (\u00b5s since the epoch) is before 1970";
    }
    if (eventTime > now + maxFutureUs) {
      return String.format(Locale.US, "event_time %.0fs in the future", (double) (eventTime - now) / 1e6);
    }
    for (int f : prices) {
      int slot = FIRST_FIELD + f;
      if (!present[slot]) {
        continue;
      }
      double price = doubles[slot];
      if (Double.isNaN(price) || !(price > 0)) {
        return fieldNames.get(f) + " " + price + " is not positive";
      }
      if (price == Double.POSITIVE_INFINITY) {
        return fieldNames.get(f) + " Infinity is not finite";
      }
    }
    for (int f : sizes) {
      int slot = FIRST_FIELD + f;
      if (!present[slot]) {
        continue;
      }
      long size = longs[slot];
      if (size < 0) {
        return fieldNames.get(f) + " " + size + " is negative";
      }
      if (size > MAX_SIZE) {
        return fieldNames.get(f) + " " + size + " is above " + MAX_SIZE + ", the largest size kept exact";
      }
    }
    int bidSlot = FIRST_FIELD + bid;
    int askSlot = FIRST_FIELD + ask;
    if (present[bidSlot] && present[askSlot] && doubles[bidSlot] > doubles[askSlot] * crossedFactor) {
      return "bid " + doubles[bidSlot] + " above ask " + doubles[askSlot] + crossedText;
    }
    return null;
  }

  /** Spark's {@code trim(s) = ''}: trim removes only spaces (0x20). */
  static boolean isBlank(byte[] text) {
    for (byte b : text) {
      if (b != ' ') {
        return false;
      }
    }
    return true;
  }

  /** Well-formed UTF-8 (Unicode Table 3-7: no overlong forms, surrogates or code points above U+10FFFF). */
  public static boolean isValidUtf8(byte[] text) {
    int i = 0;
    int n = text.length;
    while (i < n) {
      int b = text[i] & 0xff;
      if (b < 0x80) {
        i++;
        continue;
      }
      int more;
      int low = 0x80;
      int high = 0xbf;
      if (b >= 0xc2 && b <= 0xdf) {
        more = 1;
      } else if (b >= 0xe0 && b <= 0xef) {
        more = 2;
        if (b == 0xe0) {
          low = 0xa0;
        } else if (b == 0xed) {
          high = 0x9f;
        }
      } else if (b >= 0xf0 && b <= 0xf4) {
        more = 3;
        if (b == 0xf0) {
          low = 0x90;
        } else if (b == 0xf4) {
          high = 0x8f;
        }
      } else {
        return false;
      }
      if (i + more >= n) {
        return false;
      }
      int second = text[i + 1] & 0xff;
      if (second < low || second > high) {
        return false;
      }
      for (int k = 2; k <= more; k++) {
        int next = text[i + k] & 0xff;
        if (next < 0x80 || next > 0xbf) {
          return false;
        }
      }
      i += more + 1;
    }
    return true;
  }

  /** The outcome of {@link #decode}: a reason, or the event's fields (a view of the decoder's buffers). */
  public final class Result {
    private String reason;
    private long eventKey;

    private Result reject(String why) {
      reason = why;
      return this;
    }

    public boolean valid() {
      return reason == null;
    }

    /** Why the record is rejected; null when it is a valid event. */
    public String reason() {
      return reason;
    }

    public long eventKey() {
      return eventKey;
    }

    public byte[] eventIdBytes() {
      return bytes[EVENT_ID];
    }

    public byte[] instrumentIdBytes() {
      return bytes[INSTRUMENT_ID];
    }

    public String instrumentId() {
      byte[] value = bytes[INSTRUMENT_ID];
      return value == null ? null : new String(value, StandardCharsets.UTF_8);
    }

    /** µs since the epoch (only meaningful when valid). */
    public long eventTime() {
      return longs[EVENT_TIME];
    }

    /** Whether fill field {@code f} is null (always, on a rejected record). */
    public boolean isNull(int f) {
      return !present[FIRST_FIELD + f];
    }

    public double doubleValue(int f) {
      return doubles[FIRST_FIELD + f];
    }

    public long longValue(int f) {
      return longs[FIRST_FIELD + f];
    }

    /** A STRING or ENUM field's UTF-8 bytes. */
    public byte[] textValue(int f) {
      return bytes[FIRST_FIELD + f];
    }

    /** Fill field {@code name} as a Double, Long or String; null when null. */
    public Object value(String name) {
      int f = fieldNames.indexOf(name);
      if (f < 0) {
        throw new IllegalArgumentException(name + " is not a fill field");
      }
      if (isNull(f)) {
        return null;
      }
      return switch (kinds[f]) {
        case DOUBLE -> doubleValue(f);
        case LONG -> longValue(f);
        case STRING, ENUM -> new String(textValue(f), StandardCharsets.UTF_8);
      };
    }
  }
}
