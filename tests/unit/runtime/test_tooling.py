"""Finding a JDK and fetching from Maven Central fail with one clear sentence (tests/integration/
test_tooling.py runs the ones that need a JDK and Maven)."""

from __future__ import annotations

import pytest

from tickflow.runtime.tooling import _pom, find_java
from tickflow.stack.base import StackError


def test_missing_java_says_what_to_install() -> None:
    with pytest.raises(StackError, match=r"needs Java 99 or newer .* point TICKFLOW_JAVA_HOME"):
        find_java(99, purpose="the test")


def test_pom_lists_each_coordinate_with_exclusions() -> None:
    pom = _pom(["org.example:lib:1.2"], ["org.slf4j:slf4j-reload4j"])
    assert "<artifactId>lib</artifactId><version>1.2</version>" in pom
    assert "<exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId></exclusion>" in pom


def test_own_excludes_apply_to_their_coordinate_only() -> None:
    pom = _pom(["org.example:server:1", "org.example:addon:1"], [], {"org.example:addon:1": ["org.example:*"]})
    server, addon = pom.split("</dependency>")[:2]
    assert "<exclusion>" not in server
    assert "<exclusion><groupId>org.example</groupId><artifactId>*</artifactId></exclusion>" in addon
