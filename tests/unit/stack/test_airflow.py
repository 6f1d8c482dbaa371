"""Airflow's configuration in the local stack: loopback, the stack's PostgreSQL, connections, secrets."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tickflow.kafka_auth import Principal, credential_file
from tickflow.settings import Settings
from tickflow.stack.airflow import (
    ADMIN_USER,
    VIEWER_USER,
    AirflowApiServer,
    AirflowScheduler,
    admin_password,
    airflow_environment,
    connections,
    password,
    write_passwords,
)
from tickflow.stack.base import StackError


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "password").write_text("pg-secret\n")
    return Settings(state_dir=tmp_path)


def test_everything_binds_loopback_and_uses_the_stacks_postgres(settings: Settings) -> None:
    env = airflow_environment(settings)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg://tickflow:pg-secret@127.0.0.1:5432/airflow"
    )
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+psycopg_async://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8080/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and int(env["AIRFLOW__CORE__PARALLELISM"]) <= 4
    assert env["TICKFLOW_STATE_DIR"] == str(settings.root)
    assert "--skip-serve-logs" in AirflowScheduler(settings).command()  # its log server would bind 0.0.0.0


def test_connections_follow_the_stack_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKFLOW_PORT_KAFKA", "19092")
    moved = Settings(state_dir=settings.state_dir)
    env = airflow_environment(moved)
    kafka = json.loads(env["AIRFLOW_CONN_KAFKA_DEFAULT"])
    assert kafka["extra"]["bootstrap.servers"] == "127.0.0.1:19092"
    assert set(connections(moved)) == {
        "kafka_default", "schema_registry", "spark_default", "metastore_default", "hiveserver2_default"
    }  # fmt: skip
    assert json.loads(env["AIRFLOW_CONN_HIVESERVER2_DEFAULT"])["port"] == 10000


def test_secrets_are_generated_once_and_private(settings: Settings) -> None:
    with pytest.raises(StackError, match="tickflow stack up"):
        admin_password(settings)
    first = airflow_environment(settings)
    again = airflow_environment(settings)
    assert first["AIRFLOW__CORE__FERNET_KEY"] == again["AIRFLOW__CORE__FERNET_KEY"]
    assert first["AIRFLOW__API_AUTH__JWT_SECRET"] == again["AIRFLOW__API_AUTH__JWT_SECRET"]
    secrets_file = settings.root / "airflow" / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    password = admin_password(settings)
    assert len(password) >= 12
    assert password in (AirflowApiServer(settings).notice() or "")


def test_the_callers_airflow_configuration_does_not_leak_into_the_stacks_airflow(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test session sets AIRFLOW__CORE__UNIT_TEST_MODE for its own DagBag; in the stack's Airflow it made every
    DAG start unpaused, so the enrichment stream's watchdog ran through the whole suite."""
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_HOME", "/somewhere/else")
    monkeypatch.setenv("TICKFLOW_STREAM_JAVA_OPTIONS", "-Xint")
    for component in (AirflowApiServer(settings), AirflowScheduler(settings)):
        env = component.process_environment()
        assert "AIRFLOW__CORE__UNIT_TEST_MODE" not in env
        assert env["AIRFLOW_HOME"] == airflow_environment(settings)["AIRFLOW_HOME"]
        assert env["TICKFLOW_STREAM_JAVA_OPTIONS"] == "-Xint"  # what is not Airflow's is passed on to tasks


def test_the_first_start_writes_both_logins_into_the_passwords_file(settings: Settings) -> None:
    path = write_passwords(settings)
    assert json.loads(path.read_text()) == {"admin": admin_password(settings), "viewer": password(settings, "viewer")}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_viewer_login_is_generated_beside_the_admin_and_into_an_older_secrets_file(settings: Settings) -> None:
    older = settings.root / "airflow" / "secrets.json"
    older.parent.mkdir(parents=True)
    older.write_text(json.dumps({"fernet_key": "f", "jwt_secret": "j", "api_secret_key": "k", "admin_password": "a"}))
    viewer = password(settings, VIEWER_USER)
    assert len(viewer) >= 12 and password(settings, ADMIN_USER) == "a"
    assert password(settings, VIEWER_USER) == viewer, "generated once"
    assert stat.S_IMODE(older.stat().st_mode) == 0o600
    env = airflow_environment(settings)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,viewer:viewer"
    assert f"viewer / {viewer}" in (AirflowApiServer(settings).notice() or "")


def test_in_secured_mode_kafka_default_logs_in_as_airflow(tmp_path: Path) -> None:
    secured = Settings(state_dir=tmp_path, secured=True)
    extra = connections(secured)["kafka_default"]["extra"]
    assert extra["sasl.username"] == "airflow" and extra["security.protocol"] == "SASL_PLAINTEXT"
    assert extra["sasl.password"] == credential_file(secured, Principal.AIRFLOW).read_text()
