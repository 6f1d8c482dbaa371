package io.tickflow.connect.hbase;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.Config;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigValue;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;

/**
 * Sink connector writing md.enriched (Confluent-framed Avro, read with ByteArrayConverter) into
 * the HBase tables md:latest and md:history. Every task gets the same settings; Connect spreads
 * the topic partitions over them.
 */
public class HBaseSinkConnector extends SinkConnector {

    private Map<String, String> settings;

    @Override
    public String version() {
        return Version.get();
    }

    @Override
    public void start(Map<String, String> props) {
        new HBaseSinkConfig(props); // fail fast on a bad configuration
        this.settings = new HashMap<>(props);
    }

    @Override
    public Class<? extends Task> taskClass() {
        return HBaseSinkTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        List<Map<String, String>> configs = new ArrayList<>(maxTasks);
        for (int i = 0; i < maxTasks; i++) {
            configs.add(new HashMap<>(settings));
        }
        return configs;
    }

    @Override
    public void stop() {
        settings = null;
    }

    @Override
    public ConfigDef config() {
        return HBaseSinkConfig.CONFIG_DEF;
    }

    @Override
    public Config validate(Map<String, String> connectorConfigs) {
        Config config = super.validate(connectorConfigs);
        String latest = connectorConfigs.getOrDefault(HBaseSinkConfig.TABLE_LATEST, HBaseSinkConfig.TABLE_LATEST_DEFAULT);
        String history = connectorConfigs.getOrDefault(HBaseSinkConfig.TABLE_HISTORY,
                HBaseSinkConfig.TABLE_HISTORY_DEFAULT);
        if (latest.equals(history)) {
            for (ConfigValue value : config.configValues()) {
                if (value.name().equals(HBaseSinkConfig.TABLE_HISTORY)) {
                    value.addErrorMessage(HBaseSinkConfig.TABLE_HISTORY + " must name a different table than "
                            + HBaseSinkConfig.TABLE_LATEST);
                }
            }
        }
        return config;
    }
}
