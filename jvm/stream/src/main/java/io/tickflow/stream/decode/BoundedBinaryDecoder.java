package io.tickflow.stream.decode;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.io.Decoder;
import org.apache.avro.util.Utf8;

/**
 * Avro's binary encoding read from one byte array, with what {@link EventDecoder} needs beyond Avro's own
 * {@code BinaryDecoder}:
 *
 * <ul>
 *   <li>a length prefix (string, bytes) larger than the bytes left is refused before anything is allocated
 *       (Avro allocates the length first, up to 2 GB, and only then finds the end of the data);
 *   <li>{@link #remaining()}: the bytes after what was read, the position being exact (no read-ahead);
 *   <li>{@link #nonCanonicalBytes()}: how many more bytes the varints read took than their shortest encoding.
 *       Spark's {@code decoded_events} counts the bytes left over as the body's length minus the length of
 *       the record re-encoded, so a varint written long (0x80 0x00 for 0) counts there as a byte left over;
 *       {@code remaining() + nonCanonicalBytes()} is that count without re-encoding.
 * </ul>
 *
 * <p>Numbers decode as in {@code BinaryDecoder}: an int takes at most 5 bytes (the bits of the fifth above
 * 32 are dropped), a long at most 10, a boolean is true when its byte is 1; reading past the end is an
 * {@link EOFException}. Not thread-safe; {@link #configure} before each record.
 */
final class BoundedBinaryDecoder extends Decoder {
  private byte[] buf = new byte[0];
  private int pos;
  private int limit;
  private long nonCanonical;

  BoundedBinaryDecoder configure(byte[] data, int offset, int length) {
    if (offset < 0 || length < 0 || offset + length > data.length) {
      throw new IndexOutOfBoundsException(offset + "+" + length + " of " + data.length);
    }
    buf = data;
    pos = offset;
    limit = offset + length;
    nonCanonical = 0;
    return this;
  }

  /** Bytes not read yet. */
  int remaining() {
    return limit - pos;
  }

  /** Bytes the varints read so far took beyond their shortest encoding. */
  long nonCanonicalBytes() {
    return nonCanonical;
  }

  /** Bytes of the shortest varint of {@code zigzag} (unsigned). */
  static int varintSize(long zigzag) {
    int size = 1;
    while ((zigzag & ~0x7FL) != 0) {
      zigzag >>>= 7;
      size++;
    }
    return size;
  }

  @Override
  public void readNull() {}

  @Override
  public boolean readBoolean() throws IOException {
    if (pos >= limit) {
      throw new EOFException();
    }
    return (buf[pos++] & 0xff) == 1;
  }

  @Override
  public int readInt() throws IOException {
    int p = pos;
    int n = 0;
    int b;
    int shift = 0;
    do {
      if (p >= limit) {
        throw new EOFException();
      }
      b = buf[p++] & 0xff;
      n ^= (b & 0x7f) << shift;
      shift += 7;
    } while (b > 0x7f && shift < 35);
    if (b > 0x7f) {
      throw new AvroRuntimeException("Invalid int encoding");
    }
    nonCanonical += (p - pos) - varintSize(n & 0xffffffffL);
    pos = p;
    return (n >>> 1) ^ -(n & 1);
  }

  @Override
  public long readLong() throws IOException {
    int p = pos;
    long n = 0;
    int b;
    int shift = 0;
    do {
      if (p >= limit) {
        throw new EOFException();
      }
      b = buf[p++] & 0xff;
      n ^= (b & 0x7fL) << shift;
      shift += 7;
    } while (b > 0x7f && shift < 70);
    if (b > 0x7f) {
      throw new AvroRuntimeException("Invalid long encoding");
    }
    nonCanonical += (p - pos) - varintSize(n);
    pos = p;
    return (n >>> 1) ^ -(n & 1);
  }

  private void need(long length) throws IOException {
    if (length < 0) {
      throw new AvroRuntimeException("Malformed data. Length is negative: " + length);
    }
    if (length > limit - pos) {
      throw new EOFException(length + " bytes announced, " + (limit - pos) + " left");
    }
  }

  @Override
  public float readFloat() throws IOException {
    need(4);
    int n = (buf[pos] & 0xff) | ((buf[pos + 1] & 0xff) << 8) | ((buf[pos + 2] & 0xff) << 16)
        | ((buf[pos + 3] & 0xff) << 24);
    pos += 4;
    return Float.intBitsToFloat(n);
  }

  @Override
  public double readDouble() throws IOException {
    need(8);
    long n = 0;
    for (int i = 7; i >= 0; i--) {
      n = (n << 8) | (buf[pos + i] & 0xffL);
    }
    pos += 8;
    return Double.longBitsToDouble(n);
  }

  /** A string's bytes, in a new array of exactly its length. */
  byte[] readStringBytes() throws IOException {
    long length = readLong();
    need(length);
    byte[] bytes = new byte[(int) length];
    System.arraycopy(buf, pos, bytes, 0, bytes.length);
    pos += bytes.length;
    return bytes;
  }

  @Override
  public Utf8 readString(Utf8 old) throws IOException {
    return new Utf8(readStringBytes()); // Utf8(byte[]) keeps the array: getBytes() is exactly the string
  }

  @Override
  public String readString() throws IOException {
    return new String(readStringBytes(), StandardCharsets.UTF_8);
  }

  @Override
  public void skipString() throws IOException {
    long length = readLong();
    need(length);
    pos += (int) length;
  }

  @Override
  public ByteBuffer readBytes(ByteBuffer old) throws IOException {
    return ByteBuffer.wrap(readStringBytes());
  }

  @Override
  public void skipBytes() throws IOException {
    skipString();
  }

  @Override
  public void readFixed(byte[] bytes, int start, int length) throws IOException {
    need(length);
    System.arraycopy(buf, pos, bytes, start, length);
    pos += length;
  }

  @Override
  public void skipFixed(int length) throws IOException {
    need(length);
    pos += length;
  }

  @Override
  public int readEnum() throws IOException {
    return readInt();
  }

  @Override
  public int readIndex() throws IOException {
    return readInt();
  }

  /** A block's item count; a corrupt count larger than the bytes left is refused (items here take a byte). */
  private long itemCount() throws IOException {
    long count = readLong();
    if (count < 0) {
      readLong(); // the block's size in bytes
      count = -count;
    }
    if (count < 0 || count > limit - pos) {
      throw new EOFException(count + " items announced, " + (limit - pos) + " bytes left");
    }
    return count;
  }

  private long skipItems() throws IOException {
    long count = readLong();
    while (count < 0) {
      long size = readLong();
      need(size);
      pos += (int) size;
      count = readLong();
    }
    if (count > limit - pos) {
      throw new EOFException(count + " items announced, " + (limit - pos) + " bytes left");
    }
    return count;
  }

  @Override
  public long readArrayStart() throws IOException {
    return itemCount();
  }

  @Override
  public long arrayNext() throws IOException {
    return itemCount();
  }

  @Override
  public long skipArray() throws IOException {
    return skipItems();
  }

  @Override
  public long readMapStart() throws IOException {
    return itemCount();
  }

  @Override
  public long mapNext() throws IOException {
    return itemCount();
  }

  @Override
  public long skipMap() throws IOException {
    return skipItems();
  }
}
