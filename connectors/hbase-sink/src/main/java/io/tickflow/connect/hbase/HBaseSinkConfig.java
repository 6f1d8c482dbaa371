package io.tickflow.connect.hbase;

import java.net.URI;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.ConfigDef.Width;
import org.apache.kafka.common.config.ConfigException;

/** Settings of the HBase sink. Standard connector settings (topics, errors.*) are Connect's own. */
public final class HBaseSinkConfig extends AbstractConfig {

    public static final String ZK_QUORUM = "hbase.zookeeper.quorum";
    public static final String ZK_QUORUM_DEFAULT = "127.0.0.1";
    public static final String ZK_PORT = "hbase.zookeeper.property.clientPort";
    public static final int ZK_PORT_DEFAULT = 2181;
    public static final String SCHEMA_REGISTRY_URL = "schema.registry.url";
    public static final String TABLE_LATEST = "hbase.table.latest";
    public static final String TABLE_LATEST_DEFAULT = "md:latest";
    public static final String TABLE_HISTORY = "hbase.table.history";
    public static final String TABLE_HISTORY_DEFAULT = "md:history";
    public static final String WRITE_BUFFER_BYTES = "hbase.write.buffer.bytes";
    public static final long WRITE_BUFFER_BYTES_DEFAULT = 4L * 1024 * 1024;
    public static final String LATEST_CONFLATE_MS = "latest.conflate.ms";
    public static final long LATEST_CONFLATE_MS_DEFAULT = 200L;

    /** Prefix of the keys handed to the HBase client Configuration. */
    public static final String HBASE_PREFIX = "hbase.";

    /** Keys under {@link #HBASE_PREFIX} that configure the sink itself, not the HBase client. */
    private static final Set<String> SINK_ONLY_KEYS = Set.of(TABLE_LATEST, TABLE_HISTORY, WRITE_BUFFER_BYTES);

    /**
     * HBase client settings the sink changes from HBase's own defaults; any of them can be overridden
     * by giving the key to the connector. Buffered cells reach HBase within a second instead of waiting
     * for the next offset commit (the client checks the buffer's age every timer tick, 1 s by its own
     * default, which would add up to a second to any shorter timeout), and a write to an unreachable
     * cluster fails after two minutes (well inside the consumer's max.poll.interval.ms) instead of twenty.
     */
    public static final Map<String, String> HBASE_CLIENT_DEFAULTS = Map.of(
            "hbase.client.write.buffer.periodicflush.timeout.ms", "1000",
            "hbase.client.write.buffer.periodicflush.timertick.ms", "50",
            "hbase.client.operation.timeout", "120000");

    private static final String GROUP_HBASE = "HBase";
    private static final String GROUP_REGISTRY = "Schema registry";

    /** namespace:qualifier, or a bare qualifier (default namespace), as HBase allows them. */
    private static final Pattern TABLE_NAME = Pattern.compile("([A-Za-z0-9_]+:)?[A-Za-z0-9_][A-Za-z0-9_.-]*");

    public static final ConfigDef CONFIG_DEF = new ConfigDef()
            .define(ZK_QUORUM, Type.STRING, ZK_QUORUM_DEFAULT, new ConfigDef.NonEmptyStringWithoutControlChars(),
                    Importance.HIGH,
                    "Comma-separated ZooKeeper hosts of the HBase cluster.",
                    GROUP_HBASE, 1, Width.LONG, "ZooKeeper quorum")
            .define(ZK_PORT, Type.INT, ZK_PORT_DEFAULT, ConfigDef.Range.between(1, 65535),
                    Importance.HIGH,
                    "ZooKeeper client port of the HBase cluster.",
                    GROUP_HBASE, 2, Width.SHORT, "ZooKeeper port")
            .define(TABLE_LATEST, Type.STRING, TABLE_LATEST_DEFAULT, new TableNameValidator(),
                    Importance.MEDIUM,
                    "Table holding the newest value of every field per instrument (families f and e). "
                            + "It must exist: the sink does not create tables.",
                    GROUP_HBASE, 3, Width.MEDIUM, "Latest table")
            .define(TABLE_HISTORY, Type.STRING, TABLE_HISTORY_DEFAULT, new TableNameValidator(),
                    Importance.MEDIUM,
                    "Table holding every record, keyed instrument_id + 0x00 + reversed event time (family h). "
                            + "It must exist: the sink does not create tables.",
                    GROUP_HBASE, 4, Width.MEDIUM, "History table")
            .define(WRITE_BUFFER_BYTES, Type.LONG, WRITE_BUFFER_BYTES_DEFAULT, ConfigDef.Range.atLeast(64L * 1024),
                    Importance.LOW,
                    "Write buffer of each of the two HBase BufferedMutators, in bytes; a full buffer is sent "
                            + "at once, and everything is flushed before offsets are committed.",
                    GROUP_HBASE, 5, Width.SHORT, "Write buffer bytes")
            .define(LATEST_CONFLATE_MS, Type.LONG, LATEST_CONFLATE_MS_DEFAULT, ConfigDef.Range.atLeast(0L),
                    Importance.MEDIUM,
                    "md:latest rows are conflated across put() calls for up to this long, then handed to HBase: "
                            + "at most one row per instrument per interval, whatever the rate and however small "
                            + "the consumer's polls. 0 conflates within each put() call only. Offsets are "
                            + "committed only after the conflated rows are written.",
                    GROUP_HBASE, 6, Width.SHORT, "Latest conflation ms")
            .define(SCHEMA_REGISTRY_URL, Type.STRING, ConfigDef.NO_DEFAULT_VALUE, new UrlValidator(),
                    Importance.HIGH,
                    "Base URL of a Confluent-compatible schema registry API (for Apicurio: "
                            + "http://host:port/apis/ccompat/v7); writer schemas are fetched from "
                            + "{url}/schemas/ids/{id}.",
                    GROUP_REGISTRY, 1, Width.LONG, "Schema registry URL");

    public HBaseSinkConfig(Map<String, ?> props) {
        super(CONFIG_DEF, props);
        if (latestTable().equals(historyTable())) {
            throw new ConfigException(TABLE_HISTORY, historyTable(),
                    "must name a different table than " + TABLE_LATEST);
        }
    }

    public String zookeeperQuorum() {
        return getString(ZK_QUORUM);
    }

    public int zookeeperPort() {
        return getInt(ZK_PORT);
    }

    public String schemaRegistryUrl() {
        return getString(SCHEMA_REGISTRY_URL);
    }

    public String latestTable() {
        return getString(TABLE_LATEST);
    }

    public String historyTable() {
        return getString(TABLE_HISTORY);
    }

    public long writeBufferBytes() {
        return getLong(WRITE_BUFFER_BYTES);
    }

    public long latestConflateMs() {
        return getLong(LATEST_CONFLATE_MS);
    }

    /**
     * The entries for the HBase client Configuration: the ZooKeeper settings plus every other
     * {@code hbase.*} key given to the connector, except the sink's own keys.
     */
    public Map<String, String> hbaseClientProperties() {
        Map<String, String> out = new LinkedHashMap<>(new java.util.TreeMap<>(HBASE_CLIENT_DEFAULTS));
        for (Map.Entry<String, ?> e : originals().entrySet()) {
            String key = e.getKey();
            if (key.startsWith(HBASE_PREFIX) && !SINK_ONLY_KEYS.contains(key) && e.getValue() != null) {
                out.put(key, String.valueOf(e.getValue()));
            }
        }
        out.put(ZK_QUORUM, zookeeperQuorum());
        out.put(ZK_PORT, Integer.toString(zookeeperPort()));
        return out;
    }

    /** The names (not values) of the extra hbase.* keys passed through, for logging. */
    public Set<String> passThroughKeys() {
        Set<String> keys = new TreeSet<>();
        for (String key : originals().keySet()) {
            if (key.startsWith(HBASE_PREFIX) && !SINK_ONLY_KEYS.contains(key) && !key.equals(ZK_QUORUM)
                    && !key.equals(ZK_PORT)) {
                keys.add(key);
            }
        }
        return keys;
    }

    /** A one-line summary for the log; holds no values that could be secrets. */
    public String summary() {
        return String.format("zookeeper=%s:%d, registry=%s, latest=%s, history=%s, writeBuffer=%d bytes, "
                        + "latest conflated for %d ms, extra hbase keys=%s",
                zookeeperQuorum(), zookeeperPort(), redactUserInfo(schemaRegistryUrl()), latestTable(),
                historyTable(), writeBufferBytes(), latestConflateMs(), passThroughKeys());
    }

    static String redactUserInfo(String url) {
        try {
            URI uri = URI.create(url);
            if (uri.getRawUserInfo() == null) {
                return url;
            }
            return new URI(uri.getScheme(), "***", uri.getHost(), uri.getPort(), uri.getPath(), null, null)
                    .toString();
        } catch (Exception e) {
            return "<unparsable url>";
        }
    }

    static final class TableNameValidator implements ConfigDef.Validator {
        @Override
        public void ensureValid(String name, Object value) {
            if (value == null || !TABLE_NAME.matcher(value.toString()).matches()) {
                throw new ConfigException(name, value,
                        "must be an HBase table name such as md:latest (namespace:qualifier)");
            }
        }

        @Override
        public String toString() {
            return "an HBase table name, namespace:qualifier";
        }
    }

    static final class UrlValidator implements ConfigDef.Validator {
        @Override
        public void ensureValid(String name, Object value) {
            if (value == null || value.toString().isBlank()) {
                throw new ConfigException(name, value, "must be the http(s) URL of the schema registry");
            }
            try {
                URI uri = URI.create(value.toString().trim());
                String scheme = uri.getScheme();
                if (scheme == null || !(scheme.equalsIgnoreCase("http") || scheme.equalsIgnoreCase("https"))
                        || uri.getHost() == null) {
                    throw new IllegalArgumentException("not an http(s) URL with a host");
                }
            } catch (IllegalArgumentException e) {
                throw new ConfigException(name, value, "must be the http(s) URL of the schema registry ("
                        + e.getMessage() + ")");
            }
        }

        @Override
        public String toString() {
            return "an http(s) URL";
        }
    }
}
