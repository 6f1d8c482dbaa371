"""The Connect service builds the project's plugins only when their sources changed, and replaces them whole."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tickflow.kafka_auth import Principal, credential_file
from tickflow.runtime import tooling
from tickflow.settings import Settings
from tickflow.stack import connect
from tickflow.stack.base import StackError


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "connectors" / "hbase-sink"
    (root / "src" / "main").mkdir(parents=True)
    (root / "pom.xml").write_text("<project/>")
    (root / "src" / "main" / "Sink.java").write_text("class Sink {}")
    return root


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch, project: Path) -> list[list[str]]:
    """A fake Maven whose build leaves one jar, named after the number of builds so far."""
    calls: list[list[str]] = []

    def run(args: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        out = project / "target" / "plugin"
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.jar"):
            old.unlink()
        (out / f"build-{len(calls)}.jar").write_text("jar")
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(tooling, "_mvn", lambda: "mvn")
    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_builds_once_then_only_when_the_sources_change(project: Path, builds: list[list[str]], tmp_path: Path) -> None:
    plugins, log = tmp_path / "state" / "connect" / "plugins", tmp_path / "build.log"
    plugins.mkdir(parents=True)
    assert connect.install_plugin(project, plugins, log)
    assert "-DskipTests" in builds[0] and builds[0][-1] == "package"
    assert not connect.install_plugin(project, plugins, log), "unchanged sources: no build"
    assert len(builds) == 1

    (project / "src" / "main" / "Sink.java").write_text("class Sink { int x; }")
    assert connect.install_plugin(project, plugins, log)
    assert [p.name for p in (plugins / "tickflow-hbase-sink").iterdir()] == ["build-2.jar"], "old jars are gone"


def test_a_failed_build_names_its_log(project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tooling, "_mvn", lambda: "mvn")
    monkeypatch.setattr(subprocess, "run", lambda args, **_: subprocess.CompletedProcess(args, 1))
    with pytest.raises(StackError, match=r"build\.log"):
        connect.install_plugin(project, tmp_path / "plugins", tmp_path / "build.log")


def test_the_digest_covers_sources_and_pom(project: Path) -> None:
    before = connect.source_digest(project)
    (project / "pom.xml").write_text("<project><version>2</version></project>")
    assert connect.source_digest(project) != before


def test_debezium_comes_from_central_without_the_workers_own_kafka_and_slf4j(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tickflow.settings import Settings

    settings = Settings(state_dir=tmp_path / "state", connectors_dir=tmp_path / "none")
    fetched: list[tuple[list[str], Path, tuple[str, ...]]] = []
    monkeypatch.setattr(connect.JvmService, "prepare", lambda self: None)
    monkeypatch.setattr(
        connect, "fetch_jars", lambda coordinates, dest, log, excludes=(): fetched.append((coordinates, dest, excludes))
    )
    worker = connect.Connect(settings)
    worker.prepare()
    assert fetched == [
        (
            [f"io.debezium:debezium-connector-postgres:{settings.debezium_version}"],
            worker.plugin_path / "debezium-connector-postgres",
            ("org.apache.kafka:*", "org.slf4j:*"),
        )
    ]


def test_the_worker_and_its_connectors_clients_log_in_as_connect_from_a_private_file(tmp_path: Path) -> None:
    worker = connect.Connect(Settings(state_dir=tmp_path, secured=True))
    worker.write_config()
    properties = worker.home / "worker.properties"
    assert stat.S_IMODE(properties.stat().st_mode) == 0o600
    lines = properties.read_text().splitlines()
    password = credential_file(worker.settings, Principal.CONNECT).read_text()
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert f"{prefix}security.protocol=SASL_PLAINTEXT" in lines
        assert f"{prefix}sasl.mechanism=SCRAM-SHA-512" in lines
        assert any(line.startswith(f"{prefix}sasl.jaas.config=") and password in line for line in lines)
    assert "group.id=tickflow-connect" in lines


def test_outside_secured_mode_the_worker_has_no_login(tmp_path: Path) -> None:
    worker = connect.Connect(Settings(state_dir=tmp_path, secured=False))
    worker.write_config()
    text = (worker.home / "worker.properties").read_text()
    assert "bootstrap.servers=127.0.0.1:9092\n" in text and "sasl" not in text and "security.protocol" not in text
