"""The tickflow role's credentials and connection, as an app finds them without the local stack."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tickflow.errors import StackError, TickflowError
from tickflow.runtime.postgres import connect, password_file, postgres_password
from tickflow.settings import Settings


def test_the_password_comes_from_the_setting_before_the_stacks_file(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    password_file(settings).parent.mkdir(parents=True)
    password_file(settings).write_text("generated\n")
    assert postgres_password(settings) == "generated"
    given = Settings(state_dir=tmp_path, postgres_password="given")  # type: ignore[arg-type]
    assert postgres_password(given) == "given"


def test_no_password_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="tickflow stack up"):
        postgres_password(Settings(state_dir=tmp_path))


def test_a_server_that_does_not_answer_is_named_with_what_to_start(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(state_dir=tmp_path, postgres_password="x", ports={"postgres": port})  # type: ignore[arg-type]
    with pytest.raises(TickflowError, match=rf"The security master \(PostgreSQL at 127.0.0.1:{port}, database "
                       r"secmaster\) is not reachable .*tickflow stack up postgres"):  # fmt: skip
        connect(settings, "secmaster", "The security master")
