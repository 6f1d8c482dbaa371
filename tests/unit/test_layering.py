"""The package's layering, read from the code (docs/architecture.md, "The package and its imports")."""

from __future__ import annotations

import ast
from pathlib import Path

import tickflow

PACKAGE = Path(tickflow.__file__).parent
# What the local stack may import: the foundation both it and the apps stand on.
STACK_MAY_IMPORT = {
    "stack",
    "runtime",
    "processes",
    "retry",
    "kafka_auth",
    "topics",
    "secret_file",
    "settings",
    "errors",
}


def imported_parts(path: Path) -> set[str]:
    """The parts of tickflow (``stack``, ``hbase``, ...) a module imports, at module level or inside functions."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tickflow"):
            names = [node.module] if node.module != "tickflow" else [f"tickflow.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("tickflow.")]
        else:
            continue
        parts |= {name.split(".")[1] for name in names if "." in name}
    return parts


def part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_no_app_imports_the_local_stack() -> None:
    """Only the stack's own command group (and the CLI's error sentences naming services) may: an app that
    runs on a cluster must not lean on the local stack."""
    allowed = {PACKAGE / "cli" / "stack.py", PACKAGE / "cli" / "errors.py"}
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if part_of(path) != "stack" and path not in allowed and "stack" in imported_parts(path)
    ]
    assert offenders == []


def test_the_stack_imports_nothing_above_it() -> None:
    above = {
        str(path.relative_to(PACKAGE)): sorted(imported_parts(path) - STACK_MAY_IMPORT)
        for path in (PACKAGE / "stack").rglob("*.py")
    }
    assert {module: parts for module, parts in above.items() if parts} == {}


def test_hbase_does_not_import_the_stream() -> None:
    assert [str(p) for p in (PACKAGE / "hbase").rglob("*.py") if "stream" in imported_parts(p)] == []
