"""``tickflow hbase``: the md tables (migrate, describe), their compaction and reconciliation."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tickflow.cli.errors import require
from tickflow.cli.output import console, out
from tickflow.settings import Settings

app = typer.Typer(help="The market-data tables in HBase (through its Thrift server).", no_args_is_help=True)


@app.command("migrate")
def migrate() -> None:
    """Create the md namespace and tables, or change them to the layout (tickflow.hbase.layout); idempotent."""
    from tickflow.hbase.layout import table_specs
    from tickflow.hbase.tables import migrate

    settings = Settings()
    applied = migrate(settings)
    for spec in table_specs(settings):
        console.print(f"[green]applied[/] {spec.name}" if spec.name in applied else f"[dim]as specified[/] {spec.name}")


@app.command("tables")
def tables() -> None:
    """List the tables with their column families (versions, TTL, compression, bloom filter, in-memory)."""
    from tickflow.hbase.tables import describe

    table = Table(title="HBase tables")
    for column in ("table", "family", "versions", "TTL s", "compression", "bloom", "in memory"):
        table.add_column(column)
    for f in describe(Settings()):
        table.add_row(f.table, f.family, str(f.versions), "forever" if f.ttl_s is None else str(f.ttl_s),
                      f.compression, f.bloom, str(f.in_memory))  # fmt: skip
    out.print(table)


@app.command("compact")
def compact(
    timeout_s: Annotated[float, typer.Option(help="Give up waiting after this long.")] = 1800.0,
) -> None:
    """Flush and major-compact md:latest and md:history, and wait until every store holds one file."""
    from tickflow.hbase.compaction import compact, summary

    settings = Settings()
    require(settings, "hbase")  # else the compaction's HBase client retries for minutes
    result = compact(settings, timeout_s=timeout_s)
    console.print(f"before: {summary(result.before) or 'no store files'}")
    console.print(f"after:  {summary(result.after) or 'no store files'}")
    out.print(result.line())


@app.command("reconcile")
def reconcile(
    repair: Annotated[bool, typer.Option(help="Re-put missing or stale instruments from the topic.")] = False,
    snapshot_id: Annotated[str | None, typer.Option(help="Default: the latest state snapshot.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only instruments whose id starts with this.")] = None,
) -> None:
    """Compare md:latest with md.enriched and the latest state snapshot; report to ops.hbase_reconciliation.
    Exits 1 when instruments remain missing or stale."""
    from tickflow.reconcile.run import reconcile

    report = reconcile(Settings(), repair=repair, snapshot_id=snapshot_id, prefix=prefix)
    out.print(report.line())
    if failure := report.failure():
        console.print(f"[bold red]error:[/] {failure}")
        raise typer.Exit(1)
