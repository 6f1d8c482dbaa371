package io.tickflow.connect.hbase;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.stream.Collectors;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.ConfigValue;
import org.apache.kafka.connect.sink.SinkConnector;
import org.junit.jupiter.api.Test;

class HBaseSinkConfigTest {

    private static Map<String, String> minimal() {
        Map<String, String> props = new HashMap<>();
        props.put("schema.registry.url", "http://127.0.0.1:8081/apis/ccompat/v7");
        return props;
    }

    @Test
    void missingSchemaRegistryUrlFailsClearly() {
        ConfigException e = assertThrows(ConfigException.class, () -> new HBaseSinkConfig(Map.of()));
        assertTrue(e.getMessage().contains("schema.registry.url"), e.getMessage());
        assertTrue(e.getMessage().contains("no default value"), e.getMessage());
    }

    @Test
    void connectorValidationReportsTheMissingUrl() {
        List<ConfigValue> values = new HBaseSinkConnector().validate(Map.of()).configValues();
        ConfigValue url = values.stream().filter(v -> v.name().equals("schema.registry.url")).findFirst()
                .orElseThrow();
        assertFalse(url.errorMessages().isEmpty());
    }

    @Test
    void defaults() {
        HBaseSinkConfig c = new HBaseSinkConfig(minimal());
        assertEquals("127.0.0.1", c.zookeeperQuorum());
        assertEquals(2181, c.zookeeperPort());
        assertEquals("md:latest", c.latestTable());
        assertEquals("md:history", c.historyTable());
        assertEquals(4L * 1024 * 1024, c.writeBufferBytes());
        assertEquals("http://127.0.0.1:8081/apis/ccompat/v7", c.schemaRegistryUrl());
    }

    @Test
    void otherHbaseKeysPassThroughToTheClient() {
        Map<String, String> props = minimal();
        props.put("hbase.zookeeper.quorum", "zk1,zk2");
        props.put("hbase.rpc.timeout", "5000");
        props.put("hbase.client.operation.timeout", "30000");
        props.put("hbase.table.latest", "t:latest");
        props.put("topics", "md.enriched");
        Map<String, String> client = new HBaseSinkConfig(props).hbaseClientProperties();
        assertEquals("zk1,zk2", client.get("hbase.zookeeper.quorum"));
        assertEquals("2181", client.get("hbase.zookeeper.property.clientPort"));
        assertEquals("5000", client.get("hbase.rpc.timeout"));
        assertEquals("30000", client.get("hbase.client.operation.timeout"), "the connector overrides sink defaults");
        assertEquals("1000", client.get("hbase.client.write.buffer.periodicflush.timeout.ms"));
        assertEquals("50", client.get("hbase.client.write.buffer.periodicflush.timertick.ms"));
        assertFalse(client.containsKey("hbase.table.latest"));
        assertFalse(client.containsKey("hbase.write.buffer.bytes"));
        assertFalse(client.containsKey("topics"));
    }

    @Test
    void badValuesAreRejected() {
        Map<String, String> props = minimal();
        props.put("schema.registry.url", "localhost:8081");
        assertTrue(assertThrows(ConfigException.class, () -> new HBaseSinkConfig(props)).getMessage()
                .contains("schema.registry.url"));

        Map<String, String> table = minimal();
        table.put("hbase.table.history", "md:bad name");
        assertThrows(ConfigException.class, () -> new HBaseSinkConfig(table));

        Map<String, String> same = minimal();
        same.put("hbase.table.history", "md:latest");
        assertTrue(assertThrows(ConfigException.class, () -> new HBaseSinkConfig(same)).getMessage()
                .contains("different table"));

        Map<String, String> port = minimal();
        port.put("hbase.zookeeper.property.clientPort", "0");
        assertThrows(ConfigException.class, () -> new HBaseSinkConfig(port));
    }

    @Test
    void summaryHidesRegistryCredentials() {
        Map<String, String> props = minimal();
        props.put("schema.registry.url", "http://user:secret@127.0.0.1:8081/apis/ccompat/v7");
        String summary = new HBaseSinkConfig(props).summary();
        assertFalse(summary.contains("secret"), summary);
    }

    @Test
    void theConnectorIsFoundByServiceLoader() {
        List<String> found = ServiceLoader.load(SinkConnector.class).stream()
                .map(p -> p.type().getName()).collect(Collectors.toList());
        assertTrue(found.contains(HBaseSinkConnector.class.getName()), found.toString());
    }

    @Test
    void connectorHandsEveryTaskTheSameSettings() {
        HBaseSinkConnector connector = new HBaseSinkConnector();
        connector.start(minimal());
        List<Map<String, String>> configs = connector.taskConfigs(3);
        assertEquals(3, configs.size());
        configs.forEach(c -> assertEquals(minimal(), c));
        assertEquals(HBaseSinkTask.class, connector.taskClass());
        assertFalse(connector.version().isBlank());
    }
}
