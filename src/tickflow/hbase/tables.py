"""The ``md`` namespace and its tables, created and kept to ``tickflow.hbase.layout``: ``tickflow hbase migrate``.

happybase speaks HBase's Thrift (1) API, which has no namespaces, no data block encoding and no in-memory
compaction. The Thrift 2 API has them (``createNamespace``, ``createTable`` with whole column-family
descriptors), but a Thrift server process serves one protocol: the Thrift 2 server answers a Thrift 1 call
with "Invalid method name: 'getTableNames'" (tried, 2.6.1). So the migration starts a short-lived Thrift 2
server on the local HBase's jars (``tickflow.hbase.jvm``) on a free port, only when a table or family is
missing or differs from the layout, or the layout changed since it was last applied, and drives it from
Python with thriftpy2 (happybase's own Thrift library) and the Thrift 2 IDL read from the hbase-thrift jar.
No JRuby shell, no Java code of ours, no second resident JVM.

Thrift 1 does not show every setting of a family (block encoding, in-memory compaction), so the specs last
applied are kept in ``<state>/hbase/tables.applied``: all are applied again when the layout changes.
Applying is idempotent (existing families are modified to the spec), as the Hive migrations are.
"""

from __future__ import annotations

import logging
import os
import socket
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tickflow.errors import TickflowError
from tickflow.hbase.jvm import hbase_home, hbase_jar, hbase_java, hbase_log
from tickflow.hbase.layout import Family, TableSpec, table_specs
from tickflow.processes import spawn, stop_session
from tickflow.retry import wait_for
from tickflow.settings import Settings

FOREVER = 2**31 - 1  # HConstants.FOREVER: the TTL of a family whose cells never expire
THRIFT2_IDL = "org/apache/hadoop/hbase/thrift2/hbase.thrift"


def migrate(settings: Settings) -> list[str]:
    """Create or change what differs from the layout; the names of the tables it applied (none: all as specified)."""
    logging.getLogger("thriftpy2").setLevel(logging.CRITICAL)
    specs = table_specs(settings)
    outdated = [spec for spec in specs if not _table_matches(settings.hbase_thrift_address, spec)]
    applied = hbase_home(settings) / "tables.applied"
    changed = not applied.is_file() or applied.read_text() != repr(specs)
    if not outdated and not changed:
        return []
    chosen = specs if changed else tuple(outdated)
    with thrift2_admin(settings) as (thrift2, client):
        _ensure_tables(thrift2, client, chosen)
    still = [spec.name for spec in outdated if not _table_matches(settings.hbase_thrift_address, spec)]
    if still:
        raise TickflowError(f"HBase did not set up {', '.join(still)}: read {hbase_log(settings)} for the cause.")
    applied.write_text(repr(specs))
    return [spec.name for spec in chosen]


@dataclass(frozen=True)
class FamilyDescription:
    """A column family as Thrift 1 shows it (``tickflow hbase tables``)."""

    table: str
    family: str
    versions: int
    ttl_s: int | None  # None: forever
    compression: str
    bloom: str
    in_memory: bool


def describe(settings: Settings) -> list[FamilyDescription]:
    """Every table's column families, as the Thrift server reports them."""
    import happybase

    host, port = settings.hbase_thrift_address
    try:
        connection = happybase.Connection(host, port, timeout=10_000)
        try:
            found = [(name, sorted(connection.table(name).families().items())) for name in connection.tables()]
        finally:
            connection.close()
    except Exception as error:
        raise TickflowError(
            f"HBase's Thrift server at {host}:{port} did not answer ({type(error).__name__}): start it with "
            "`tickflow stack up hbase-thrift`."
        ) from error
    return [
        FamilyDescription(
            name.decode(),
            family.decode(),
            spec["max_versions"],
            None if spec["time_to_live"] == FOREVER else spec["time_to_live"],
            spec["compression"].decode(),
            spec["bloom_filter_type"].decode(),
            bool(spec["in_memory"]),
        )
        for name, families in found
        for family, spec in families
    ]


@contextmanager
def thrift2_admin(settings: Settings, timeout_s: float = 120.0) -> Iterator[tuple[Any, Any]]:
    """A short-lived Thrift 2 server on a free port: (the IDL module, a client of it)."""
    from thriftpy2.rpc import make_client

    host, home = settings.host, hbase_home(settings)
    thrift2 = _thrift2_module(hbase_jar(settings, "hbase-thrift"), home)
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = int(probe.getsockname()[1])
    command = [
        *hbase_java(settings, "192m"),
        "org.apache.hadoop.hbase.thrift2.ThriftServer",
        *("-b", host, "-p", str(port), "-threadpool", "start"),
    ]
    pid = spawn("hbase thrift2 (schema changes)", command, os.environ, hbase_log(settings), cwd=home)
    try:

        def answering() -> Any:
            client = make_client(thrift2.THBaseService, host, port, timeout=60_000)
            client.listNamespaces()
            return client

        client = wait_for(
            answering,
            timeout_s,
            interval_s=1.0,
            retry_if=lambda error: True,  # refused or not ready while the JVM starts
            timed_out=lambda error: TickflowError(
                f"HBase's Thrift 2 schema server did not answer within {timeout_s:.0f}s: is HBase up "
                f"(`tickflow stack up hbase`)? Its log: {hbase_log(settings)}."
            ),
        )
        try:
            yield thrift2, client
        finally:
            client.close()
    finally:
        stop_session(pid, 10.0)


@cache
def _thrift2_module(jar: Path, workdir: Path) -> Any:
    """The Thrift 2 IDL as a thriftpy2 module, read from the hbase-thrift jar the server runs."""
    import thriftpy2

    idl = workdir / "thrift2" / "hbase.thrift"
    idl.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar) as archive:
        idl.write_bytes(archive.read(THRIFT2_IDL))
    return thriftpy2.load(str(idl), module_name="tickflow_hbase2_thrift")


def _table_matches(address: tuple[str, int], spec: TableSpec) -> bool:
    """Whether the table exists with these families as far as Thrift 1 shows them (not the block
    encoding, which it does not report: that is set whenever the table is created or changed)."""
    import happybase

    connection = happybase.Connection(*address, timeout=30_000)
    try:
        if spec.name.encode() not in connection.tables():
            return False
        families = connection.table(spec.name).families()
    finally:
        connection.close()
    if set(families) != {family.name.encode() for family in spec.families}:
        return False
    for family in spec.families:
        actual = families[family.name.encode()]
        ttl = actual["time_to_live"]
        if (
            actual["max_versions"] != family.max_versions
            or actual["compression"] != family.compression.encode()
            or actual["bloom_filter_type"] != family.bloom.encode()
            or bool(actual["in_memory"]) != family.in_memory
            or (None if ttl == FOREVER else ttl) != family.ttl_s
        ):
            return False
    return True


def _ensure_tables(thrift2: Any, client: Any, specs: Sequence[TableSpec]) -> None:
    """Create the namespaces, tables and families that are missing; set the others to the spec."""
    for namespace in sorted({spec.name.partition(":")[0] for spec in specs}):
        if namespace not in client.listNamespaces():
            client.createNamespace(thrift2.TNamespaceDescriptor(name=namespace))
    for spec in specs:
        namespace, _, qualifier = spec.name.partition(":")
        table = thrift2.TTableName(ns=namespace.encode(), qualifier=qualifier.encode())
        families = [_family_descriptor(thrift2, family) for family in spec.families]
        if not client.tableExists(table):
            client.createTable(thrift2.TTableDescriptor(tableName=table, columns=families), None)
            continue
        existing = {column.name for column in client.getTableDescriptor(table).columns}
        for family in families:
            if family.name in existing:
                client.modifyColumnFamily(table, family)
            else:
                client.addColumnFamily(table, family)


def _family_descriptor(thrift2: Any, family: Family) -> Any:
    return thrift2.TColumnFamilyDescriptor(
        name=family.name.encode(),
        maxVersions=family.max_versions,
        timeToLive=family.ttl_s if family.ttl_s is not None else FOREVER,
        compressionType=getattr(thrift2.TCompressionAlgorithm, family.compression),
        dataBlockEncoding=getattr(thrift2.TDataBlockEncoding, family.block_encoding),
        bloomnFilterType=getattr(thrift2.TBloomFilterType, family.bloom),  # sic, the IDL's spelling
        inMemory=family.in_memory,
        attributes={b"IN_MEMORY_COMPACTION": family.in_memory_compaction.encode()},
    )
