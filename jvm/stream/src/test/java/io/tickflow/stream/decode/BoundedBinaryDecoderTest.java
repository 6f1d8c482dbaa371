package io.tickflow.stream.decode;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.Decoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.util.Utf8;
import org.apache.spark.unsafe.types.UTF8String;
import org.junit.jupiter.api.Test;

/** The decoder against Avro's BinaryDecoder (what Spark's from_avro reads with), and UTF-8 against Spark's. */
class BoundedBinaryDecoderTest {
  static {
    // Avro refuses longer strings before allocating them (as the stream's JVMs do, AVRO_LIMITS)
    System.setProperty("org.apache.avro.limits.string.maxLength", "4096");
  }

  enum Op {
    BOOLEAN,
    INT,
    LONG,
    FLOAT,
    DOUBLE,
    STRING
  }

  /** The values read, then "fail" at the first exception. */
  static List<String> run(Decoder decoder, List<Op> ops) {
    List<String> out = new ArrayList<>();
    try {
      for (Op op : ops) {
        out.add(
            switch (op) {
              case BOOLEAN -> String.valueOf(decoder.readBoolean());
              case INT -> String.valueOf(decoder.readInt());
              case LONG -> String.valueOf(decoder.readLong());
              case FLOAT -> String.valueOf(Float.floatToRawIntBits(decoder.readFloat()));
              case DOUBLE -> String.valueOf(Double.doubleToRawLongBits(decoder.readDouble()));
              case STRING -> {
                Utf8 text = decoder.readString(null);
                yield HexFormat.of().formatHex(Arrays.copyOf(text.getBytes(), text.getByteLength()));
              }
            });
      }
    } catch (IOException | RuntimeException e) {
      out.add("fail");
    }
    return out;
  }

  /** The values of a successful run, re-encoded in their shortest form. */
  static int canonicalLength(List<Op> ops, List<String> values) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(bytes, null);
    for (int i = 0; i < ops.size(); i++) {
      String value = values.get(i);
      switch (ops.get(i)) {
        case BOOLEAN -> encoder.writeBoolean(Boolean.parseBoolean(value));
        case INT -> encoder.writeInt(Integer.parseInt(value));
        case LONG -> encoder.writeLong(Long.parseLong(value));
        case FLOAT -> encoder.writeFloat(Float.intBitsToFloat(Integer.parseInt(value)));
        case DOUBLE -> encoder.writeDouble(Double.longBitsToDouble(Long.parseLong(value)));
        case STRING -> encoder.writeString(new Utf8(HexFormat.of().parseHex(value)));
      }
    }
    encoder.flush();
    return bytes.size();
  }

  @Test
  void readsWhatAvroReadsAndFailsWhereAvroFails() throws IOException {
    Random random = new Random(20250101);
    Op[] kinds = Op.values();
    BoundedBinaryDecoder ours = new BoundedBinaryDecoder();
    BinaryDecoder avro = null;
    int succeeded = 0;
    for (int round = 0; round < 20_000; round++) {
      byte[] data = new byte[random.nextInt(24)];
      for (int i = 0; i < data.length; i++) {
        int pick = random.nextInt(4);
        // continuation bytes and small values are where varints go wrong
        data[i] = (byte) (pick == 0 ? 0x80 | random.nextInt(128) : pick == 1 ? random.nextInt(8) : pick == 2 ? 0xff : random.nextInt(256));
      }
      List<Op> ops = new ArrayList<>();
      for (int i = 1 + random.nextInt(4); i > 0; i--) {
        ops.add(kinds[random.nextInt(kinds.length)]);
      }
      int offset = data.length > 0 ? random.nextInt(Math.min(3, data.length)) : 0;
      int length = data.length - offset;
      List<String> mine = run(ours.configure(data, offset, length), ops);
      avro = DecoderFactory.get().binaryDecoder(data, offset, length, avro);
      List<String> theirs = run(avro, ops);
      java.util.function.Supplier<String> context = () -> HexFormat.of().formatHex(data, offset, data.length) + " " + ops;
      assertEquals(theirs, mine, context);
      if (!mine.contains("fail")) {
        succeeded++;
        assertEquals(avro.inputStream().available(), ours.remaining(), context);
        int consumed = length - ours.remaining();
        assertEquals(canonicalLength(ops, mine), consumed - ours.nonCanonicalBytes(), context);
      }
    }
    assertEquals(true, succeeded > 1_000, "successful runs: " + succeeded);
  }

  static boolean spark(byte[] bytes) {
    return UTF8String.fromBytes(bytes).isValid();
  }

  @Test
  void utf8IsValidWhereSparkSaysSo() {
    for (int a = 0; a < 256; a++) {
      byte[] one = {(byte) a};
      assertEquals(spark(one), EventDecoder.isValidUtf8(one), () -> HexFormat.of().formatHex(one));
      for (int b = 0; b < 256; b++) {
        byte[] two = {(byte) a, (byte) b};
        assertEquals(spark(two), EventDecoder.isValidUtf8(two), () -> HexFormat.of().formatHex(two));
        if (a >= 0xc0) {
          for (int c = 0; c < 256; c++) {
            byte[] three = {(byte) a, (byte) b, (byte) c};
            assertEquals(spark(three), EventDecoder.isValidUtf8(three), () -> HexFormat.of().formatHex(three));
          }
        }
      }
    }
    Random random = new Random(7);
    for (int round = 0; round < 300_000; round++) {
      byte[] bytes = new byte[1 + random.nextInt(6)];
      for (int i = 0; i < bytes.length; i++) {
        bytes[i] = (byte) (i == 0 ? 0xe0 + random.nextInt(32) : 0x80 + random.nextInt(64 + 16) - 8);
      }
      assertEquals(spark(bytes), EventDecoder.isValidUtf8(bytes), () -> HexFormat.of().formatHex(bytes));
    }
  }
}
