package io.tickflow.stream.decode;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The cases of tests/integration/test_decode.py, one record at a time, with Spark's reason texts. */
class EventDecoderTest {
  static final Path ROOT = Path.of("../..");
  static final String V1_TEXT = read("schemas/tickflow.md.MarketEvent.avsc");
  static final String V2_TEXT = read("tests/fixtures/schemas/tickflow.md.MarketEvent.venue.avsc");
  static final Schema V1 = new Schema.Parser().parse(V1_TEXT);
  static final Schema V2 = new Schema.Parser().parse(V2_TEXT);
  static final Map<Integer, String> WRITERS = Map.of(1, V1_TEXT, 2, V2_TEXT);
  /** tickflow.fill.semantics.FILL_FIELDS: the optional fields of the repository's schema (V1 here: the reader). */
  static final List<String> FILL_FIELDS = EventDecoder.optionalFields(V1_TEXT);
  static final long NOW = System.currentTimeMillis() * 1000;
  static final Map<String, Object> QUOTE = quote();

  static String read(String path) {
    try {
      return Files.readString(ROOT.resolve(path));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static Map<String, Object> quote() {
    Map<String, Object> quote = new LinkedHashMap<>();
    quote.put("event_id", "Q1-1");
    quote.put("instrument_id", "XNAS:AAPL");
    quote.put("source", "quotes");
    quote.put("event_time", NOW);
    quote.put("sequence", 1L);
    quote.put("bid_price", 100.0);
    quote.put("bid_size", 5L);
    quote.put("ask_price", 100.5);
    quote.put("ask_size", 7L);
    return quote;
  }

  static Map<String, Object> with(Object... changes) {
    Map<String, Object> event = new HashMap<>(QUOTE);
    for (int i = 0; i < changes.length; i += 2) {
      event.put((String) changes[i], changes[i + 1]);
    }
    return event;
  }

  static byte[] prefix(long schemaId) {
    return new byte[] {0, (byte) (schemaId >>> 24), (byte) (schemaId >>> 16), (byte) (schemaId >>> 8), (byte) schemaId};
  }

  /** The record in the Confluent wire format (compile_encoder(schema, prefix=confluent_prefix(id))). */
  static byte[] framed(Schema schema, int schemaId, Map<String, Object> event) {
    GenericRecord record = new GenericData.Record(schema);
    for (Schema.Field field : schema.getFields()) {
      Object value = event.get(field.name());
      Schema type = field.schema();
      if (type.getType() == Schema.Type.UNION) {
        type = type.getTypes().get(1);
      }
      record.put(field.name(), value != null && type.getType() == Schema.Type.ENUM
          ? new GenericData.EnumSymbol(type, value) : value);
    }
    try {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      out.write(prefix(schemaId));
      BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
      new GenericDatumWriter<GenericRecord>(schema).write(record, encoder);
      encoder.flush();
      return out.toByteArray();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (byte[] part : parts) {
      out.writeBytes(part);
    }
    return out.toByteArray();
  }

  /** zigzag_varint of tickflow.avro_codec. */
  static byte[] zigzag(long value) {
    long n = (value << 1) ^ (value >> 63);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    while ((n & ~0x7FL) != 0) {
      out.write((int) ((n & 0x7f) | 0x80));
      n >>>= 7;
    }
    out.write((int) n);
    return out.toByteArray();
  }

  /** bytes.replace(old, new) (first occurrence, same length). */
  static byte[] replace(byte[] data, byte[] old, byte[] replacement) {
    for (int i = 0; i + old.length <= data.length; i++) {
      boolean match = true;
      for (int k = 0; k < old.length && match; k++) {
        match = data[i + k] == old[k];
      }
      if (match) {
        byte[] copy = data.clone();
        System.arraycopy(replacement, 0, copy, i, replacement.length);
        return copy;
      }
    }
    throw new IllegalArgumentException("not found");
  }

  static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  static byte[] latin1(String text) {
    return text.getBytes(StandardCharsets.ISO_8859_1);
  }

  static EventDecoder decoder(double crossedTolerance) {
    return new EventDecoder(V2_TEXT, WRITERS, FILL_FIELDS, 60_000_000L, crossedTolerance);
  }

  static String reason(byte[] key, byte[] value) {
    return decoder(0.0).decode(key, value, NOW).reason();
  }

  @Test
  void v1AndV2RecordsDecodeIntoTheLatestReaderSchema() {
    EventDecoder decoder = decoder(0.0);
    Map<String, Object> v2Quote = with("venue", "X");
    long[] keys = new long[2];
    int i = 0;
    for (byte[] value : List.of(framed(V1, 1, QUOTE), framed(V2, 2, v2Quote))) {
      EventDecoder.Result result = decoder.decode(utf8("XNAS:AAPL"), value, NOW);
      assertNull(result.reason());
      assertEquals("XNAS:AAPL", result.instrumentId());
      assertEquals(NOW, result.eventTime());
      assertEquals(100.0, result.value("bid_price"));
      assertEquals(5L, result.value("bid_size"));
      assertEquals(100.5, result.value("ask_price"));
      assertNull(result.value("trade_id"));
      assertNull(result.value("trade_side"));
      keys[i++] = result.eventKey();
    }
    assertEquals(keys[0], keys[1]);
    assertEquals(-951006578009788475L, keys[0]); // spark.sql("select xxhash64('Q1-1')")
    assertEquals(FILL_FIELDS, decoder.fillFields()); // venue (v2 only) is not a fill field
  }

  @Test
  void enumsComeOutAsTheirSymbols() {
    EventDecoder.Result result =
        decoder(0.0).decode(utf8("XNAS:AAPL"), framed(V1, 1, with("trade_id", "T-1", "trade_side", "sell")), NOW);
    assertNull(result.reason());
    assertEquals("T-1", result.value("trade_id"));
    assertEquals("sell", result.value("trade_side"));
  }

  static Stream<Arguments> badBytes() {
    byte[] good = framed(V1, 1, QUOTE);
    byte[] cut = new byte[20];
    System.arraycopy(good, 0, cut, 0, 20);
    byte[] junk = new byte[31];
    java.util.Arrays.fill(junk, (byte) 'x');
    junk[0] = (byte) 0xff;
    return Stream.of(
        Arguments.of(new byte[0], EventDecoder.NOT_FRAMED),
        Arguments.of(junk, EventDecoder.NOT_FRAMED),
        Arguments.of(prefix(1), EventDecoder.NOT_FRAMED), // a prefix and no body
        Arguments.of(null, EventDecoder.NOT_FRAMED), // a tombstone
        Arguments.of(concat(prefix(77), new byte[20]), "unknown schema id 77"),
        Arguments.of(concat(prefix(0xffffffffL), new byte[20]), "unknown schema id 4294967295"),
        Arguments.of(cut, "undecodable Avro body for schema id 1"),
        Arguments.of(concat(good, new byte[2]), "2 bytes left over after the record (schema id 1)"));
  }

  @ParameterizedTest
  @MethodSource("badBytes")
  void badBytesAreRejectedWithAReason(byte[] value, String reason) {
    assertEquals(reason, reason(utf8("XNAS:AAPL"), value));
  }

  @Test
  void aCorruptLengthPrefixIsRejectedNotAllocated() {
    byte[] value = concat(prefix(1), zigzag(1_500_000_000L), utf8("Q1-1"));
    assertEquals("undecodable Avro body for schema id 1", reason(utf8("XNAS:AAPL"), value));
    byte[] huge = concat(prefix(1), zigzag(Long.MAX_VALUE), utf8("Q1-1"));
    assertEquals("undecodable Avro body for schema id 1", reason(utf8("XNAS:AAPL"), huge));
    byte[] negative = concat(prefix(1), zigzag(-5), utf8("Q1-1"));
    assertEquals("undecodable Avro body for schema id 1", reason(utf8("XNAS:AAPL"), negative));
  }

  @Test
  void aVarintWrittenLongCountsAsBytesLeftOverAsSparkCountsThem() {
    // Spark: body length minus the re-encoded record's length; 0x80 0x00 re-encodes as 0x00
    byte[] good = framed(V1, 1, QUOTE);
    byte[] longIndex = concat(java.util.Arrays.copyOf(good, good.length - 1), new byte[] {(byte) 0x80, 0});
    assertEquals("1 bytes left over after the record (schema id 1)", reason(utf8("XNAS:AAPL"), longIndex));
    byte[] truncated = concat(java.util.Arrays.copyOf(good, good.length - 1), new byte[] {(byte) 0x80});
    assertEquals("undecodable Avro body for schema id 1", reason(utf8("XNAS:AAPL"), truncated));
  }

  @Test
  void anEnumIndexOutOfRangeIsUndecodable() {
    // event_id "Q1-1", instrument_id "XNAS:AAPL", then the source's index: 4 and -3 are no symbol of Source
    byte[] head = concat(prefix(1), zigzag(4), utf8("Q1-1"), zigzag(9), utf8("XNAS:AAPL"));
    byte[] good = framed(V1, 1, QUOTE);
    byte[] tail = java.util.Arrays.copyOfRange(good, head.length + 1, good.length);
    for (long index : new long[] {4, -3, 3}) {
      String reason = reason(utf8("XNAS:AAPL"), concat(head, zigzag(index), tail));
      assertEquals(index == 3 ? null : "undecodable Avro body for schema id 1", reason, "index " + index);
    }
    byte[] tradeSide = framed(V1, 1, with("trade_side", "buy"));
    tradeSide[tradeSide.length - 1] = 6; // index 3 of TradeSide (buy, sell, unknown)
    assertEquals("undecodable Avro body for schema id 1", reason(utf8("XNAS:AAPL"), tradeSide));
  }

  static Stream<Arguments> impossibleEvents() {
    return Stream.of(
        Arguments.of(with("instrument_id", ""), "", "missing instrument_id"),
        Arguments.of(with("event_id", " "), "XNAS:AAPL", "missing event_id"),
        Arguments.of(with(), "XNAS:MSFT", "message key 'XNAS:MSFT' is not the instrument_id 'XNAS:AAPL'"),
        Arguments.of(with(), null, "message key None is not the instrument_id 'XNAS:AAPL'"),
        Arguments.of(with("bid_size", -1L), "XNAS:AAPL", "bid_size -1 is negative"),
        Arguments.of(with("bid_size", (1L << 53) + 1), "XNAS:AAPL",
            "bid_size 9007199254740993 is above 9007199254740992, the largest size kept exact"),
        Arguments.of(with("ask_price", -3.0, "bid_price", null), "XNAS:AAPL", "ask_price -3.0 is not positive"),
        Arguments.of(with("ask_price", -1e20, "bid_price", null), "XNAS:AAPL", "ask_price -1.0E20 is not positive"),
        Arguments.of(with("bid_price", -0.0), "XNAS:AAPL", "bid_price -0.0 is not positive"),
        Arguments.of(with("last_price", Double.NaN), "XNAS:AAPL", "last_price NaN is not positive"),
        Arguments.of(with("ask_price", Double.POSITIVE_INFINITY), "XNAS:AAPL", "ask_price Infinity is not finite"),
        Arguments.of(with("trade_price", Double.NEGATIVE_INFINITY), "XNAS:AAPL",
            "trade_price -Infinity is not positive"),
        Arguments.of(with("bid_price", 101.0), "XNAS:AAPL", "bid 101.0 above ask 100.5 beyond the 0.00% tolerance"),
        Arguments.of(with("event_time", NOW + 3_600_000_000L), "XNAS:AAPL", "event_time 3600s in the future"),
        Arguments.of(with("event_time", Long.MAX_VALUE), "XNAS:AAPL",
            String.format("event_time %.0fs in the future", (double) (Long.MAX_VALUE - NOW) / 1e6)),
        Arguments.of(with("event_time", -1L), "XNAS:AAPL", "event_time -1 (\u00b5s since the epoch) is before 1970"),
        Arguments.of(with("event_time", Long.MIN_VALUE), "XNAS:AAPL",
            "event_time -9223372036854775808 (\u00b5s since the epoch) is before 1970"),
        // the first failing rule wins
        Arguments.of(with("bid_price", -1.0, "ask_size", -2L), "XNAS:MSFT",
            "message key 'XNAS:MSFT' is not the instrument_id 'XNAS:AAPL'"),
        Arguments.of(with("bid_size", -1L, "ask_price", 0.0), "XNAS:AAPL", "ask_price 0.0 is not positive"),
        // Spark's trim removes only spaces: a tab is not blank
        Arguments.of(with("event_id", "\t"), "XNAS:AAPL", null));
  }

  @ParameterizedTest
  @MethodSource("impossibleEvents")
  void impossibleEventsAreRejectedWithAReason(Map<String, Object> event, String key, String reason) {
    assertEquals(reason, reason(key == null ? null : utf8(key), framed(V1, 1, event)));
  }

  @Test
  void aValidEventPassesAndCrossedToleranceIsASetting() {
    EventDecoder decoder = decoder(0.01);
    assertNull(decoder.decode(utf8("XNAS:AAPL"), framed(V1, 1, QUOTE), NOW).reason());
    assertNull(decoder.decode(utf8("XNAS:AAPL"), framed(V1, 1, with("bid_price", 100.6)), NOW).reason());
    assertEquals("bid 101.6 above ask 100.5 beyond the 1.00% tolerance",
        decoder.decode(utf8("XNAS:AAPL"), framed(V1, 1, with("bid_price", 101.6)), NOW).reason());
    // an empty key is shown as None, as a null one
    assertEquals("message key None is not the instrument_id 'XNAS:AAPL'",
        decoder.decode(new byte[0], framed(V1, 1, QUOTE), NOW).reason());
  }

  @Test
  void toleranceIsShownAsPythonFormatsIt() {
    // f"{x:.2%}" for each x
    assertEquals("0.00%", EventDecoder.percent(0.0));
    assertEquals("1.00%", EventDecoder.percent(0.01));
    assertEquals("0.12%", EventDecoder.percent(0.00125));
    assertEquals("1.25%", EventDecoder.percent(0.0125));
    assertEquals("1.50%", EventDecoder.percent(0.015));
    assertEquals("33.33%", EventDecoder.percent(0.3333));
    assertEquals("100.00%", EventDecoder.percent(1.0));
    assertEquals("0.01%", EventDecoder.percent(0.00005));
    assertEquals("-0.00%", EventDecoder.percent(-1e-9));
  }

  @Test
  void bytesThatAreNotUtf8AreRejected() {
    byte[] good = framed(V1, 1, QUOTE);
    byte[] badInstrument = replace(good, utf8("XNAS:AAPL"), latin1("XNAS:AAP\u00ff"));
    byte[] badTrade = replace(framed(V1, 1, with("trade_id", "T-1")), utf8("T-1"), latin1("T-\u00ff"));
    byte[] badEventId = replace(good, utf8("Q1-1"), new byte[] {'Q', (byte) 0xed, (byte) 0xa0, (byte) 0x80});
    EventDecoder decoder = decoder(0.0);
    assertEquals("message key '\ufffdXNAS:AAPL' is not the instrument_id 'XNAS:AAPL'",
        decoder.decode(latin1("\u00ffXNAS:AAPL"), good, NOW).reason());
    assertEquals("instrument_id is not valid UTF-8", decoder.decode(latin1("XNAS:AAP\u00ff"), badInstrument, NOW).reason());
    assertEquals("trade_id is not valid UTF-8", decoder.decode(utf8("XNAS:AAPL"), badTrade, NOW).reason());
    assertEquals("event_id is not valid UTF-8", decoder.decode(utf8("XNAS:AAPL"), badEventId, NOW).reason());
  }

  @Test
  void aRejectedRecordKeepsNoFields() {
    EventDecoder decoder = decoder(0.0);
    EventDecoder.Result result = decoder.decode(utf8("XNAS:MSFT"), framed(V1, 1, QUOTE), NOW);
    assertTrue(!result.valid());
    assertNull(result.instrumentIdBytes());
    for (int f = 0; f < FILL_FIELDS.size(); f++) {
      assertTrue(result.isNull(f));
    }
    // and the next record is read on its own
    result = decoder.decode(utf8("XNAS:AAPL"), framed(V2, 2, with("venue", "XLON", "bid_price", null)), NOW);
    assertNull(result.reason());
    assertNull(result.value("bid_price"));
    assertArrayEquals(utf8("XNAS:AAPL"), result.instrumentIdBytes());
  }

  @Test
  void writerIdsMayBeAnyNumberType() {
    Map<Long, String> writers = Map.of(1L, V1_TEXT);
    EventDecoder decoder = new EventDecoder(V2_TEXT, writers, FILL_FIELDS, 60_000_000L, 0.0);
    assertNull(decoder.decode(utf8("XNAS:AAPL"), framed(V1, 1, QUOTE), NOW).reason());
    assertEquals("unknown schema id 2", decoder.decode(utf8("XNAS:AAPL"), framed(V2, 2, QUOTE), NOW).reason());
  }

  @Test
  void aWriterRegisteredLaterIsLookedUpOnceAndDecodes() {
    List<Long> asked = new ArrayList<>();
    EventDecoder decoder =
        new EventDecoder(V2_TEXT, Map.of(1L, V1_TEXT), FILL_FIELDS, 60_000_000L, 0.0)
            .lookUpWritersWith(id -> {
              asked.add(id);
              return id == 2 ? V2_TEXT : id == 3 ? "{\"type\": \"record\", \"name\": \"Other\", \"fields\": []}" : null;
            });
    assertNull(decoder.decode(utf8("XNAS:AAPL"), framed(V2, 2, QUOTE), NOW).reason());
    assertNull(decoder.decode(utf8("XNAS:AAPL"), framed(V2, 2, QUOTE), NOW).reason());
    assertEquals("unknown schema id 9", decoder.decode(utf8("XNAS:AAPL"), framed(V2, 9, QUOTE), NOW).reason());
    assertEquals("unknown schema id 9", decoder.decode(utf8("XNAS:AAPL"), framed(V2, 9, QUOTE), NOW).reason());
    String undecodable = "undecodable Avro body for schema id 3";
    assertEquals(undecodable, decoder.decode(utf8("XNAS:AAPL"), framed(V2, 3, QUOTE), NOW).reason());
    assertEquals(undecodable, decoder.decode(utf8("XNAS:AAPL"), framed(V2, 3, QUOTE), NOW).reason());
    assertEquals(List.of(2L, 9L, 3L), asked);
  }
}
