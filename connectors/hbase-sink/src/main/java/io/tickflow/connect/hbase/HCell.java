package io.tickflow.connect.hbase;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Objects;

/** One HBase cell to write: family, qualifier, timestamp (ms) and value bytes. Immutable. */
public final class HCell {

    private final String family;
    private final String qualifier;
    private final long timestamp;
    private final byte[] value;

    public HCell(String family, String qualifier, long timestamp, byte[] value) {
        this.family = Objects.requireNonNull(family, "family");
        this.qualifier = Objects.requireNonNull(qualifier, "qualifier");
        this.timestamp = timestamp;
        this.value = Objects.requireNonNull(value, "value").clone();
    }

    public String family() {
        return family;
    }

    public String qualifier() {
        return qualifier;
    }

    public byte[] familyBytes() {
        return family.getBytes(StandardCharsets.UTF_8);
    }

    public byte[] qualifierBytes() {
        return qualifier.getBytes(StandardCharsets.UTF_8);
    }

    /** Cell timestamp in milliseconds. */
    public long timestamp() {
        return timestamp;
    }

    public byte[] value() {
        return value.clone();
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof HCell)) {
            return false;
        }
        HCell c = (HCell) o;
        return timestamp == c.timestamp && family.equals(c.family) && qualifier.equals(c.qualifier)
                && Arrays.equals(value, c.value);
    }

    @Override
    public int hashCode() {
        return Objects.hash(family, qualifier, timestamp) * 31 + Arrays.hashCode(value);
    }

    @Override
    public String toString() {
        return family + ":" + qualifier + "@" + timestamp + "=" + HexFormat.of().formatHex(value);
    }
}
