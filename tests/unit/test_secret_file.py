"""A generated secret is made once, private (0600) from the moment it exists, and never empty."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tickflow.errors import TickflowError
from tickflow.secret_file import generated_secret


def test_made_once_with_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    import os

    path = tmp_path / "deep" / "secret"
    previous = os.umask(0o022)
    try:
        secret = generated_secret(path, nbytes=24)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) == 32 and path.read_text() == secret
    assert generated_secret(path) == secret
    assert [p.name for p in path.parent.iterdir()] == ["secret"]


def test_racing_callers_all_get_the_one_secret(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        found = set(pool.map(lambda _: generated_secret(tmp_path / "secret"), range(32)))
    assert len(found) == 1


def test_an_empty_file_is_refused_not_taken_as_the_secret(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("\n")
    with pytest.raises(TickflowError, match="is empty: delete it"):
        generated_secret(tmp_path / "secret")
