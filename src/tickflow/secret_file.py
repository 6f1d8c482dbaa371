"""Secrets generated once into a file only their owner can read: the PostgreSQL password, the serving token.

No secret has a default: each is made with ``secrets.token_urlsafe`` the first time something needs it, and
read back from its file afterwards (a restart keeps it; deleting the file makes a new one)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from tickflow.errors import TickflowError


def generated_secret(path: Path, nbytes: int = 32) -> str:
    """The secret in ``path``, generated and written with mode 0600 the first time it is asked for.

    The file is private and complete from the moment it exists under its name (written under another, then
    hard-linked into place), so a reader never sees half a secret, and of two processes generating it at
    once, the second reads the first's."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        partial = Path(name)
        try:
            with os.fdopen(descriptor, "w") as file:
                os.fchmod(file.fileno(), 0o600)  # whatever the umask
                file.write(secrets.token_urlsafe(nbytes))
            os.link(partial, path)
        except FileExistsError:
            pass  # another process made it first: theirs is the secret
        finally:
            partial.unlink()
    secret = path.read_text().strip()
    if not secret:
        raise TickflowError(f"The secret file {path} is empty: delete it, and a new secret is generated.")
    return secret


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read, whatever the umask (a config that holds a password)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)
