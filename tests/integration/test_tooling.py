"""The JDK and Maven the stack needs: found on this machine, and a failed download named in one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickflow.runtime.tooling import fetch_jars, find_java
from tickflow.stack.base import StackError

pytestmark = pytest.mark.integration


def test_a_jdk_17_is_found_on_this_machine() -> None:
    java = find_java(17)
    assert java.name == "java" and java.exists()


def test_a_failed_download_names_the_artifact_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "fetch.log"
    with pytest.raises(StackError, match=r"Downloading org\.tickflow\.absent:nothing:0\.0\.0 .* read .*fetch\.log"):
        fetch_jars(["org.tickflow.absent:nothing:0.0.0"], tmp_path / "jars", log)
    assert log.read_text()  # mvn's own explanation is kept for the reader
