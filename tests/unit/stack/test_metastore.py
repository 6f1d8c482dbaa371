"""The metastore runs its launcher on the configured address, compiled once per launcher source."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tickflow.settings import Settings
from tickflow.stack import metastore
from tickflow.stack.base import StackError
from tickflow.stack.metastore import Metastore


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Metastore:
    jdk = tmp_path / "jdk" / "bin"
    jdk.mkdir(parents=True)
    (jdk / "java").touch()
    (jdk / "javac").touch()
    monkeypatch.setattr(Metastore, "java", property(lambda self: jdk / "java"))
    source = tmp_path / "MetastoreLauncher.java"
    source.write_text("public class MetastoreLauncher {}")
    monkeypatch.setattr(metastore, "LAUNCHER", source)
    return Metastore(Settings(state_dir=tmp_path / "state", host="127.0.0.2"))


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """A fake javac that leaves the class in its -d directory."""
    calls: list[list[str]] = []

    def run(args: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        Path(args[args.index("-d") + 1], "MetastoreLauncher.class").write_bytes(b"\xca\xfe\xba\xbe")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_the_launcher_binds_the_configured_host(service: Metastore) -> None:
    assert service.command()[-3:] == ["MetastoreLauncher", "127.0.0.2", str(service.settings.ports.metastore)]
    assert service.classpath().startswith(f"{service.launcher_classes}:")


def test_compiled_once_and_again_only_when_the_source_changes(service: Metastore, compiles: list[list[str]]) -> None:
    service.compile_launcher()
    service.compile_launcher()
    assert len(compiles) == 1
    assert compiles[0][0].endswith("/jdk/bin/javac")
    metastore.LAUNCHER.write_text("public class MetastoreLauncher { /* changed */ }")
    service.compile_launcher()
    assert len(compiles) == 2


def test_a_jre_without_javac_is_one_sentence(service: Metastore) -> None:
    service.java.with_name("javac").unlink()
    with pytest.raises(StackError, match="needs a JDK"):
        service.compile_launcher()
