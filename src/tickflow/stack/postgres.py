"""PostgreSQL from Debian's packages: the security master's, trade capture's and Airflow's databases.

The server runs in the foreground under the supervisor with its cluster in
``<state>/postgres/data``. PostgreSQL refuses to run as root, so when the stack is
started by root the server runs as the ``postgres`` system user the package creates.
The password of the ``tickflow`` role is generated at first start and kept in
``<state>/postgres/password`` (mode 0600); nothing has a default password.

The server runs with ``wal_level=logical`` so that Debezium can stream the ``trades`` database's
changes into Kafka (``tickflow.sources.trade_capture``). That level is read only at server start:
``bootstrap`` refuses a server that was started without it rather than let the connector fail later.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tickflow.runtime.postgres import check_wal_level, connect, password_file, postgres_password
from tickflow.secret_file import generated_secret
from tickflow.stack.base import Service, StackError

DATABASES = ("secmaster", "trades", "airflow")
PG_DIRS = (Path("/usr/lib/postgresql"),)
MAX_SLOT_WAL_KEEP = "2GB"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    candidates = sorted(
        (d / "bin" for root in PG_DIRS if root.is_dir() for d in root.iterdir() if (d / "bin" / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise StackError(
            "postgres: the PostgreSQL server is not installed: run `apt-get install postgresql` "
            "(Debian's package) and start the stack again."
        )
    return candidates[-1]


class Postgres(Service):
    name = "postgres"

    @property
    def ports(self) -> Sequence[int]:
        return (self.settings.ports.postgres,)

    @property
    def address(self) -> str:
        return f"postgresql://tickflow@{self.settings.host}:{self.settings.ports.postgres}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    def _as_server_user(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        runuser = shutil.which("runuser")
        if runuser is None:
            raise StackError("postgres: running as root needs `runuser` (util-linux) to drop to the postgres user.")
        try:
            pwd.getpwnam("postgres")
        except KeyError as error:
            raise StackError(
                "postgres: running as root needs the `postgres` system user that Debian's postgresql package creates."
            ) from error
        return [runuser, "-u", "postgres", "--"]

    def prepare(self) -> None:
        bin_dir = postgres_bin()
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        secret = password_file(self.settings)
        if self.settings.postgres_password is None:
            generated_secret(secret, nbytes=24)
        if os.geteuid() == 0:
            shutil.chown(self.socket_dir, "postgres", "postgres")
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(exist_ok=True)
        pwfile = self.home / "initdb.pw"
        pwfile.write_text(postgres_password(self.settings) + "\n")
        if os.geteuid() == 0:
            for path in (self.data_dir, pwfile):
                shutil.chown(path, "postgres", "postgres")
        with self.log_path.open("a") as log:
            result = subprocess.run(
                [
                    *self._as_server_user(),
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "tickflow",
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        pwfile.unlink()
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(f"postgres: initdb failed (exit {result.returncode}): read {self.log_path}.")

    def command(self) -> list[str]:
        return [
            *self._as_server_user(),
            str(postgres_bin() / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.settings.ports.postgres),
            "-c", f"listen_addresses={self.settings.host}",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "shared_buffers=128MB",
            "-c", "max_connections=100",
            "-c", "logging_collector=off",
            # Logical decoding for Debezium (one slot, one walsender; a few spare for a second connector).
            "-c", "wal_level=logical",
            "-c", "max_replication_slots=4",
            "-c", "max_wal_senders=4",
            # A slot whose connector is gone keeps WAL, and the cluster also holds Airflow's and the security
            # master's writes: past this the slot is invalidated (the connector fails, visibly) instead of
            # filling the disk.
            "-c", f"max_slot_wal_keep_size={MAX_SLOT_WAL_KEEP}",
        ]  # fmt: skip

    def connect(self, database: str = "postgres") -> Any:
        return connect(self.settings, database)

    def check_health(self) -> None:
        with self.connect() as connection:
            connection.execute("SELECT 1").fetchone()

    def bootstrap(self) -> None:
        with self.connect() as connection:
            existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database").fetchall()}
            for database in DATABASES:
                if database not in existing:
                    connection.execute(f'CREATE DATABASE "{database}"')
            check_wal_level(connection)
