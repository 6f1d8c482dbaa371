"""Where a command writes: data (tables, status lines, JSON) on stdout, logs, progress and errors on stderr."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # logs, progress, errors
out = Console(soft_wrap=True)  # data: the tables and lines a command answers with (`| grep` works)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the status as JSON on stdout (for scripts and jq).")]


def jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def print_json(value: Any) -> None:
    """``value`` (dataclasses, enums, paths and addresses included) as JSON on stdout, without Rich's markup."""
    sys.stdout.write(json.dumps(jsonable(value), indent=2) + "\n")


def print_event(service: str, message: str) -> None:
    """A progress line of a service or an app, named on the left."""
    console.print(f"[cyan]{service:>12}[/] {message}")
