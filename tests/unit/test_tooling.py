"""Finding a JDK and fetching from Maven Central fail with one clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickflow.stack.base import StackError
from tickflow.stack.tooling import _pom, fetch_jars, find_java


def test_a_jdk_17_is_found_on_this_machine() -> None:
    java = find_java(17)
    assert java.name == "java" and java.exists()


def test_missing_java_says_what_to_install() -> None:
    with pytest.raises(StackError, match=r"needs Java 99 or newer .* point TICKFLOW_JAVA_HOME"):
        find_java(99, purpose="the test")


def test_pom_lists_each_coordinate_with_exclusions() -> None:
    pom = _pom(["org.example:lib:1.2"], ["org.slf4j:slf4j-reload4j"])
    assert "<artifactId>lib</artifactId><version>1.2</version>" in pom
    assert "<exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId></exclusion>" in pom


def test_a_failed_download_names_the_artifact_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "fetch.log"
    with pytest.raises(StackError, match=r"Downloading org\.tickflow\.absent:nothing:0\.0\.0 .* read .*fetch\.log"):
        fetch_jars(["org.tickflow.absent:nothing:0.0.0"], tmp_path / "jars", log)
    assert log.read_text()  # mvn's own explanation is kept for the reader
