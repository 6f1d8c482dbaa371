"""The cluster profile's topology and configs, without starting anything (docs/scaling.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickflow.settings import Settings
from tickflow.spark import spark_conf
from tickflow.stack import services, supervisor
from tickflow.stack.connect import Connect
from tickflow.stack.hdfs import DataNode, NameNode
from tickflow.stack.kafka import Kafka
from tickflow.stack.spark_standalone import SparkWorker


@pytest.fixture
def cluster(tmp_path: Path) -> Settings:
    return Settings(profile="cluster", state_dir=tmp_path)


def test_every_process_binds_a_host_and_port_no_other_does(cluster: Settings) -> None:
    listened = [(service.host, port) for service in services(cluster) for port in service.ports]
    assert len(listened) == len(set(listened))
    hosts = {service.name: service.host for service in services(cluster)}
    assert [hosts[f"kafka-{n}"] for n in (1, 2, 3)] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert hosts["spark-master"] == hosts["hdfs-namenode"] == "127.0.0.2"
    assert hosts["registry"] == hosts["hbase"] == hosts["airflow"] == cluster.host == "127.0.0.1"


def test_the_clients_see_every_broker_and_worker_and_the_apps_the_standalone_master(cluster: Settings) -> None:
    assert cluster.bootstrap_servers == "127.0.0.2:9092,127.0.0.3:9092,127.0.0.4:9092"
    assert cluster.connect_urls == ("http://127.0.0.3:8083", "http://127.0.0.4:8083")
    assert cluster.spark_master == "spark://127.0.0.2:7077" and cluster.hdfs_uri == "hdfs://127.0.0.2:8020"
    assert (cluster.kafka_replication, cluster.kafka_min_insync) == (3, 2)
    assert Settings(profile="cluster", spark_master="local[1]").spark_master == "local[1]"  # a setting wins
    plain = Settings()
    assert (plain.bootstrap_servers, plain.spark_master, plain.hdfs_uri) == ("127.0.0.1:9092", "local[2]", None)
    assert (plain.kafka_replication, plain.kafka_min_insync) == (1, 1)


def test_apps_on_a_standalone_master_take_one_core_executors_two_in_all(cluster: Settings) -> None:
    conf = spark_conf(cluster, "app")
    assert (conf["spark.executor.cores"], conf["spark.cores.max"]) == ("1", "2")
    assert conf["spark.hadoop.dfs.client.use.datanode.hostname"] == "true"
    assert "spark.cores.max" not in spark_conf(Settings(), "app")


def test_a_group_name_means_its_members_and_what_needs_them(cluster: Settings) -> None:
    stack = supervisor(cluster)
    assert [s.name for s in stack.ordered(["kafka"])] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [s.name for s in stack.ordered(["spark-worker-2"])] == ["spark-master", "spark-worker-2"]
    needing_a_broker = {s.name for s in stack.with_dependents(["kafka-2"])}
    assert {"kafka-2", "registry", "connect-1", "connect-2"} <= needing_a_broker
    assert "kafka-1" not in needing_a_broker


def test_the_brokers_form_one_quorum_of_three_replicating_everything(cluster: Settings) -> None:
    broker = Kafka(cluster, 2)
    broker.home.mkdir(parents=True)
    (broker.home / "data").mkdir()
    (broker.home / "data" / "meta.properties").write_text("")  # formatted already: write_config formats nothing
    broker.write_config()
    config = dict(
        line.split("=", 1) for line in (broker.home / "server.properties").read_text().splitlines() if "=" in line
    )
    assert config["node.id"] == "2" and config["listeners"].startswith("PLAINTEXT://127.0.0.3:9092,")
    assert config["controller.quorum.bootstrap.servers"] == "127.0.0.2:9093,127.0.0.3:9093,127.0.0.4:9093"
    assert config["default.replication.factor"] == config["offsets.topic.replication.factor"] == "3"
    assert config["min.insync.replicas"] == config["transaction.state.log.min.isr"] == "2"


def test_connect_workers_share_a_group_and_plugins_and_advertise_their_own_host(cluster: Settings) -> None:
    first, second = Connect(cluster, 1), Connect(cluster, 2)
    assert first.plugin_path == second.plugin_path and first.lib == second.lib
    second.home.mkdir(parents=True)
    second.write_config()
    worker = (second.home / "worker.properties").read_text()
    assert "listeners=http://127.0.0.4:8083" in worker and "rest.advertised.host.name=127.0.0.4" in worker
    assert "config.storage.replication.factor=3" in worker


def test_hdfs_binds_only_its_hosts_and_clients_dial_the_datanode_by_name(cluster: Settings) -> None:
    datanode = DataNode(cluster)
    datanode.home.mkdir(parents=True)
    datanode.write_config()
    site = (datanode.home / "hdfs-site.xml").read_text()
    for key, value in {
        "dfs.namenode.rpc-address": "127.0.0.2:8020",
        "dfs.namenode.http-address": "127.0.0.2:9870",
        "dfs.datanode.address": "127.0.0.3:9866",
        "dfs.datanode.http.address": "127.0.0.3:9864",
        "dfs.datanode.hostname": "127.0.0.3",
        "dfs.client.use.datanode.hostname": "true",
        "dfs.namenode.safemode.threshold-pct": "0",  # a restart does not wait for the DataNode it starts after
    }.items():
        assert f"<name>{key}</name><value>{value}</value>" in site
    assert NameNode(cluster).address == "hdfs://127.0.0.2:8020"
    assert SparkWorker(cluster, 2).address == "127.0.0.4:7078"
