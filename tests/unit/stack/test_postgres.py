"""PostgreSQL runs ready for Debezium's logical decoding, and says so when a running server is not."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tickflow.settings import Settings
from tickflow.stack import postgres
from tickflow.stack.base import StackError
from tickflow.stack.postgres import Postgres


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Postgres:
    monkeypatch.setattr(postgres, "postgres_bin", lambda: Path("/pg/bin"))
    monkeypatch.setattr(Postgres, "_as_server_user", lambda self: [])
    return Postgres(Settings(state_dir=tmp_path))


def flags(command: list[str]) -> dict[str, str]:
    return dict(value.split("=", 1) for option, value in pairwise(command) if option == "-c")


def test_the_server_starts_with_logical_decoding_and_a_cap_on_the_wal_a_slot_keeps(server: Postgres) -> None:
    command = server.command()
    assert command[0] == "/pg/bin/postgres"
    assert {k: v for k, v in flags(command).items() if "wal" in k or "slot" in k} == {
        "wal_level": "logical",
        "max_replication_slots": "4",
        "max_wal_senders": "4",
        "max_slot_wal_keep_size": "2GB",
    }


class FakeConnection:
    def __init__(self, wal_level: str, databases: tuple[str, ...]) -> None:
        self.wal_level = wal_level
        self.databases = list(databases)
        self.statements: list[str] = []

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def execute(self, sql: str) -> Any:
        self.statements.append(sql)
        rows = {"SHOW wal_level": [(self.wal_level,)]}.get(sql, [(d,) for d in self.databases])

        class Result:
            def fetchone(self) -> Any:
                return rows[0]

            def fetchall(self) -> Any:
                return rows

        return Result()


def test_bootstrap_creates_the_trades_database(server: Postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = FakeConnection("logical", ("postgres", "secmaster", "airflow"))
    monkeypatch.setattr(Postgres, "connect", lambda self, database="postgres": connection)
    server.bootstrap()
    assert 'CREATE DATABASE "trades"' in connection.statements
    assert not any("secmaster" in s or "airflow" in s for s in connection.statements if s.startswith("CREATE"))


def test_a_server_started_without_logical_decoding_is_told_to_restart(
    server: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = FakeConnection("replica", postgres.DATABASES)
    monkeypatch.setattr(Postgres, "connect", lambda self, database="postgres": connection)
    with pytest.raises(StackError, match=r"wal_level=replica.*tickflow stack down postgres && tickflow stack up"):
        server.bootstrap()
