"""The cluster profile's HDFS: a NameNode and a DataNode, each on its own "host", from Hadoop's jars on Maven
Central (the Hadoop client version of the installed pyspark). It holds the stream's checkpoint and fill state
and the backfill's scratch state (docs/scaling.md).

Two settings make a DataNode on 127.0.0.3 reachable at all: the NameNode records a DataNode by the source
address of its connection, 127.0.0.1 for every loopback "host", so the DataNode names itself
(``dfs.datanode.hostname``) and every client, Spark's and the daemons', dials that name
(``dfs.client.use.datanode.hostname``; ``tickflow.spark`` sets it for the apps). The web pages come from
``hadoop-hdfs``'s test jar: its main jar has no ``webapps/``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from typing import Any

import httpx

from tickflow.runtime.tooling import fetch_artifact
from tickflow.stack.jvm import JvmService, hadoop_xml

# Hadoop's daemons log through reload4j; to stdout, which the supervisor keeps in <state>/logs/<service>.log.
LOG4J = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.BlockStateChange=WARN
log4j.logger.org.apache.hadoop.hdfs.StateChange=WARN
log4j.logger.org.apache.hadoop.hdfs.server.datanode.DataNode.clienttrace=WARN
log4j.logger.org.apache.hadoop.hdfs.server.namenode.FSNamesystem.audit=WARN
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
"""


def jmx(url: str, bean: str) -> dict[str, Any]:
    """One MBean of a Hadoop daemon's ``/jmx`` servlet."""
    response = httpx.get(f"{url}/jmx", params={"qry": f"Hadoop:service={bean}"}, timeout=5)
    response.raise_for_status()
    beans = response.json().get("beans", [])
    if not beans:
        raise ValueError(f"{url} has no MBean {bean}")
    found: dict[str, Any] = beans[0]
    return found


class HdfsDaemon(JvmService):
    """What the NameNode and the DataNode share: the jars, the site files, the log configuration."""

    heap = "256m"

    @property
    def group(self) -> str:
        return "hdfs"

    @property
    def coordinates(self) -> list[str]:
        version = self.settings.hadoop_version
        return [
            f"org.apache.hadoop:{artifact}:{version}"
            for artifact in ("hadoop-hdfs", "hadoop-common", "hadoop-hdfs-client")
        ]

    def prepare(self) -> None:
        super().prepare()
        webapps = self.home / "webapps"
        if not webapps.is_dir():
            tests = fetch_artifact(
                f"org.apache.hadoop:hadoop-hdfs:{self.settings.hadoop_version}:jar:tests", self.log_path
            )
            with zipfile.ZipFile(tests) as jar:
                jar.extractall(self.home, [name for name in jar.namelist() if name.startswith("webapps/")])

    def write_config(self) -> None:
        hosts, ports = self.settings.cluster, self.settings.ports
        (self.home / "log4j.properties").write_text(LOG4J)
        (self.home / "core-site.xml").write_text(
            hadoop_xml({"fs.defaultFS": self.settings.hdfs_uri, "hadoop.tmp.dir": self.home / "tmp"})
        )
        (self.home / "hdfs-site.xml").write_text(
            hadoop_xml(
                {
                    "dfs.namenode.rpc-address": f"{hosts.namenode}:{ports.hdfs_namenode}",
                    "dfs.namenode.http-address": f"{hosts.namenode}:{ports.hdfs_namenode_http}",
                    "dfs.namenode.name.dir": (self.paths.home("hdfs-namenode") / "name").as_uri(),
                    "dfs.namenode.safemode.extension": 1000,
                    # The DataNode starts after the NameNode is healthy: a NameNode waiting in safe mode for the
                    # block reports of a restart (the default 99.9%) would wait for it forever.
                    "dfs.namenode.safemode.threshold-pct": 0,
                    "dfs.datanode.address": f"{hosts.datanode}:{ports.hdfs_datanode}",
                    "dfs.datanode.ipc.address": f"{hosts.datanode}:{ports.hdfs_datanode_ipc}",
                    "dfs.datanode.http.address": f"{hosts.datanode}:{ports.hdfs_datanode_http}",
                    "dfs.datanode.data.dir": (self.paths.home("hdfs-datanode") / "data").as_uri(),
                    "dfs.datanode.hostname": hosts.datanode,
                    "dfs.client.use.datanode.hostname": "true",
                    "dfs.datanode.use.datanode.hostname": "true",
                    "dfs.replication": 1,  # one DataNode
                }
            )
        )

    def jvm_options(self) -> list[str]:
        return [f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.net.preferIPv4Stack=true"]

    @property
    def namenode_url(self) -> str:
        return f"http://{self.settings.cluster.namenode}:{self.settings.ports.hdfs_namenode_http}"


class NameNode(HdfsDaemon):
    name = "hdfs-namenode"
    heap = "512m"

    @property
    def host(self) -> str:
        return self.settings.cluster.namenode

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.hdfs_namenode, self.settings.ports.hdfs_namenode_http)

    @property
    def address(self) -> str:
        return str(self.settings.hdfs_uri)

    def write_config(self) -> None:
        super().write_config()
        if not (self.home / "name" / "current" / "VERSION").exists():
            self._format()

    def _format(self) -> None:
        # Always the same cluster id: a DataNode refuses a NameNode whose id differs from its data's.
        self.run_tool(["org.apache.hadoop.hdfs.server.namenode.NameNode", "-format", "-clusterid", "tickflow",
                       "-nonInteractive", "-force"], "format its storage")  # fmt: skip

    def command(self) -> list[str]:
        return [*self.java_command(), "org.apache.hadoop.hdfs.server.namenode.NameNode"]

    def check_health(self) -> None:
        """Out of start-up and safe mode: it takes writes (its HTTP port answers a few seconds before that)."""
        info = jmx(self.namenode_url, "NameNode,name=NameNodeInfo")
        state = jmx(self.namenode_url, "NameNode,name=FSNamesystemState")
        if info.get("Safemode") or state.get("FSState") != "Operational":
            raise ValueError(f"the NameNode is not operational: {info.get('Safemode') or state.get('FSState')}")

    def notice(self) -> str | None:
        return f"HDFS NameNode UI: {self.namenode_url}/"


class DataNode(HdfsDaemon):
    name = "hdfs-datanode"
    depends_on = ("hdfs-namenode",)

    @property
    def host(self) -> str:
        return self.settings.cluster.datanode

    @property
    def ports(self) -> Sequence[int]:
        ports = self.settings.ports
        return (ports.hdfs_datanode, ports.hdfs_datanode_ipc, ports.hdfs_datanode_http)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.settings.ports.hdfs_datanode}"

    def command(self) -> list[str]:
        return [*self.java_command(), "org.apache.hadoop.hdfs.server.datanode.DataNode"]

    def check_health(self) -> None:
        """Its block pool service is RUNNING against the NameNode (the NameNode would call a killed DataNode live
        for ten more minutes, so its own view is asked)."""
        own = jmx(f"http://{self.host}:{self.settings.ports.hdfs_datanode_http}", "DataNode,name=DataNodeInfo")
        actors = json.loads(own.get("BPServiceActorInfo") or "[]")
        if not any(actor.get("ActorState") == "RUNNING" for actor in actors):
            raise ValueError("the DataNode is not registered with the NameNode")
