"""The ``tickflow`` role on PostgreSQL: its password and a connection to one of its databases.

The local stack generates the password at first start (``<state>/postgres/password``, mode 0600);
``TICKFLOW_POSTGRES_PASSWORD`` gives it instead, for a server the stack does not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tickflow.errors import StackError, TickflowError
from tickflow.settings import Settings


def password_file(settings: Settings) -> Path:
    return settings.root / "postgres" / "password"


def postgres_password(settings: Settings) -> str:
    """The tickflow role's password: from TICKFLOW_POSTGRES_PASSWORD, else the stack's generated one."""
    if settings.postgres_password is not None:
        return settings.postgres_password.get_secret_value()
    path = password_file(settings)
    if not path.exists():
        raise StackError(f"There is no PostgreSQL password at {path}: start the stack with `tickflow stack up`.")
    return path.read_text().strip()


def connect(settings: Settings, database: str = "postgres", what: str = "PostgreSQL") -> Any:
    """An autocommit connection (psycopg) as ``tickflow`` to one database of the configured server; ``what``
    names that database in the one-sentence error when the server does not answer."""
    import psycopg

    try:
        return psycopg.connect(
            host=settings.host,
            port=settings.ports.postgres,
            user="tickflow",
            password=postgres_password(settings),
            dbname=database,
            connect_timeout=5,
            autocommit=True,
        )
    except psycopg.Error as error:
        raise TickflowError(
            f"{what} (PostgreSQL at {settings.host}:{settings.ports.postgres}, database {database}) is not "
            f"reachable ({str(error).strip().splitlines()[0]}): start it with `tickflow stack up postgres`."
        ) from error


def check_wal_level(connection: Any) -> None:
    """Fail unless the server decodes logically: a cluster started before the flag was added keeps
    ``replica`` until it restarts, and Debezium's slot cannot be created there."""
    level = connection.execute("SHOW wal_level").fetchone()[0]
    if level != "logical":
        raise StackError(
            f"PostgreSQL runs with wal_level={level}, but Debezium's logical decoding needs wal_level=logical, "
            "which takes effect only at server start: restart it with "
            "`tickflow stack down postgres && tickflow stack up` (Airflow stops and starts with it)."
        )
