"""Secured mode's Kafka client config: nothing extra when off, a SCRAM login from a private file when on."""

from __future__ import annotations

import stat
from pathlib import Path

from tickflow.kafka_auth import (
    Principal,
    credential_file,
    java_client_properties,
    kafka_client_config,
    spark_kafka_options,
)
from tickflow.settings import Settings


def test_outside_secured_mode_a_client_gets_the_bootstrap_servers_alone(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, secured=False)
    assert kafka_client_config(settings, Principal.STREAM) == {"bootstrap.servers": "127.0.0.1:9092"}
    assert java_client_properties(settings, Principal.STREAM) == {"bootstrap.servers": "127.0.0.1:9092"}
    assert not credential_file(settings, Principal.STREAM).exists()


def test_in_secured_mode_each_principal_logs_in_with_its_own_generated_password(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, secured=True)
    stream = kafka_client_config(settings, Principal.STREAM)
    assert stream["security.protocol"] == "SASL_PLAINTEXT"
    assert stream["sasl.mechanism"] == "SCRAM-SHA-512"
    assert stream["sasl.username"] == "stream"
    password_file = credential_file(settings, Principal.STREAM)
    assert stream["sasl.password"] == password_file.read_text()
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert kafka_client_config(settings, Principal.STREAM) == stream  # read back, not generated again
    assert kafka_client_config(settings, Principal.AIRFLOW)["sasl.password"] != stream["sasl.password"]


def test_java_clients_get_the_same_login_as_a_jaas_config(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, secured=True)
    password = kafka_client_config(settings, Principal.CONNECT)["sasl.password"]
    properties = java_client_properties(settings, Principal.CONNECT)
    login_module = "org.apache.kafka.common.security.scram.ScramLoginModule"
    assert properties["sasl.jaas.config"] == f'{login_module} required username="connect" password="{password}";'
    spark = spark_kafka_options(settings, Principal.CONNECT)
    assert spark["kafka.bootstrap.servers"] == "127.0.0.1:9092"
    assert spark["kafka.sasl.jaas.config"] == properties["sasl.jaas.config"]
    assert spark["kafka.security.protocol"] == "SASL_PLAINTEXT"
