"""A short-lived JVM on the local HBase's jars and its ``hbase-site.xml``: what the table migration (a Thrift 2
server for a moment) and the major compaction (``MajorCompaction.java``) run as, because Thrift 1 cannot do
either. The jars and the site file are those the stack fetched and wrote under the state directory."""

from __future__ import annotations

from pathlib import Path

from tickflow.runtime.paths import StatePaths
from tickflow.runtime.tooling import ADD_OPENS, find_java
from tickflow.settings import Settings


def hbase_home(settings: Settings) -> Path:
    """Where the local HBase keeps its ``hbase-site.xml`` and ``log4j.properties`` (the JVM's working directory)."""
    return StatePaths(settings.root).home("hbase")


def hbase_log(settings: Settings) -> Path:
    """The local HBase's log, where these JVMs write too."""
    return StatePaths(settings.root).log("hbase")


def hbase_jar(settings: Settings, artifact: str) -> Path:
    """One of the fetched HBase jars (``hbase-thrift``, ...) of the configured version."""
    return StatePaths(settings.root).lib / "hbase" / f"{artifact}-{settings.hbase_version}.jar"


def hbase_java(settings: Settings, heap: str = "128m") -> list[str]:
    """``java ... -cp <hbase home>:<hbase jars>/*``: append a main class (or a single-file source) and arguments."""
    home, lib = hbase_home(settings), StatePaths(settings.root).lib / "hbase"
    return [
        str(find_java(17, settings.java_home, "HBase's admin tools")),
        f"-Xmx{heap}",
        "-Djava.net.preferIPv4Stack=true",
        f"-Dlog4j.configuration=file:{home / 'log4j.properties'}",
        *ADD_OPENS,
        *("-cp", f"{home}:{lib}/*"),
    ]
