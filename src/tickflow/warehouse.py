"""The Hive warehouse through HiveServer2: statements, and the versioned migrations in hive_ddl/.

Migrations are files ``V<number>__<what>.hql``, applied in order, each once. What was
applied is recorded (version, name, checksum) in ``tickflow_meta.schema_migrations``;
an applied file that changed afterwards stops the run, since the warehouse no longer
matches it: add a new migration instead of editing an old one.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tickflow.errors import TickflowError
from tickflow.settings import Settings

MIGRATION_FILE = re.compile(r"^V(\d+)__([a-z0-9_]+)\.hql$")
BOOTSTRAP = (
    "CREATE DATABASE IF NOT EXISTS tickflow_meta COMMENT 'tickflow bookkeeping'",
    "CREATE TABLE IF NOT EXISTS tickflow_meta.schema_migrations "
    "(version INT, name STRING, checksum STRING, applied_at TIMESTAMP) USING parquet",
)


@contextmanager
def hive_cursor(settings: Settings) -> Iterator[Any]:
    """A DB-API cursor on HiveServer2 (the Spark Thrift Server), closed afterwards."""
    from pyhive import hive
    from thrift.transport.TTransport import TTransportException

    logging.getLogger("thrift.transport.TSocket").setLevel(logging.CRITICAL)
    logging.getLogger("pyhive.hive").setLevel(logging.WARNING)  # it logs every statement at INFO
    try:
        connection = hive.connect(
            host=settings.host, port=settings.ports.thriftserver, auth="NONE", username="tickflow"
        )
    except TTransportException as error:
        raise TickflowError(
            f"HiveServer2 at {settings.host}:{settings.ports.thriftserver} did not answer: "
            "start it with `tickflow stack up`."
        ) from error
    try:
        yield connection.cursor()
    finally:
        connection.close()


def sql_string(text: str) -> str:
    """A Spark SQL string literal (backslashes are escapes there, as quotes are)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_statements(settings: Settings, statements: Sequence[str]) -> list[tuple[Any, ...]]:
    """Execute statements in order; return the rows of the last one."""
    rows: list[tuple[Any, ...]] = []
    with hive_cursor(settings) as cursor:
        for statement in statements:
            cursor.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
    return rows


def split_statements(hql: str) -> list[str]:
    """Statements of an HQL file: ';' at the end of a line ends one; '--' comment lines are dropped."""
    lines = [line for line in hql.splitlines() if not line.strip().startswith("--")]
    statements = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return [s.strip() for s in statements if s.strip()]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


def migrations(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise TickflowError(f"There is no migrations directory {directory}: point TICKFLOW_HIVE_DDL_DIR at one.")
    found = []
    for path in sorted(directory.glob("*.hql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise TickflowError(f"{path} is not named V<number>__<what>.hql: rename it so it can be ordered.")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise TickflowError(f"Two migrations in {directory} share a version number: renumber one.")
    return sorted(found, key=lambda m: m.version)


@dataclass(frozen=True)
class MigrationResult:
    applied: list[Migration]
    already: list[Migration]


def migrate(settings: Settings, directory: Path | None = None) -> MigrationResult:
    """Apply the migrations not applied yet, in order, recording each."""
    directory = directory or settings.hive_ddl_dir
    wanted = migrations(directory)
    with hive_cursor(settings) as cursor:
        for statement in BOOTSTRAP:
            cursor.execute(statement)
        cursor.execute("SELECT version, checksum FROM tickflow_meta.schema_migrations")
        done = {int(v): c for v, c in cursor.fetchall()}
        applied, already = [], []
        for migration in wanted:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise TickflowError(
                        f"{migration.path.name} changed after it was applied: put the change in a new "
                        "migration file instead of editing an applied one."
                    )
                already.append(migration)
                continue
            for statement in split_statements(migration.path.read_text()):
                try:
                    cursor.execute(statement)
                except Exception as error:
                    raise TickflowError(
                        f"{migration.path.name} failed and was not recorded ({_first_line(error)}): "
                        "fix the statement and run `tickflow hive migrate` again."
                    ) from error
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            cursor.execute(
                "INSERT INTO tickflow_meta.schema_migrations VALUES "
                f"({migration.version}, '{migration.name}', '{migration.checksum}', TIMESTAMP '{now}')"
            )
            applied.append(migration)
    return MigrationResult(applied, already)


def _first_line(error: Exception) -> str:
    text = str(error)
    match = re.search(r"errorMessage=['\"]([^'\"]+)", text)
    return (match.group(1) if match else text).splitlines()[0][:300]
