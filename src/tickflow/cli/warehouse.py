"""``tickflow hive`` (the warehouse's migrations) and ``tickflow reference`` (source systems, refresh into Hive)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from tickflow.cli.errors import require
from tickflow.cli.output import console, out
from tickflow.settings import Settings

hive_app = typer.Typer(help="The Hive warehouse (through HiveServer2).", no_args_is_help=True)
reference_app = typer.Typer(help="Reference data: source systems and the refresh into Hive.", no_args_is_help=True)


@hive_app.command("migrate")
def hive_migrate() -> None:
    """Apply the hive_ddl/ migrations not applied yet, in order, and record them."""
    from tickflow.warehouse import migrate

    result = migrate(Settings())
    for migration in result.already:
        console.print(f"[dim]already applied[/] V{migration.version:03d} {migration.name}")
    for migration in result.applied:
        console.print(f"[green]applied[/] V{migration.version:03d} {migration.name}")
    console.print(f"{len(result.applied)} applied, {len(result.already)} already applied")


@reference_app.command("seed")
def reference_seed(
    instruments: Annotated[int, typer.Option(help="Size of the universe (as for simulate).")] = 500,
    seed: Annotated[int, typer.Option(help="Universe seed (as for simulate).")] = 7,
) -> None:
    """Seed the security master (PostgreSQL) and the FX file drop from the simulators' universe."""
    from tickflow.reference.sources import seed_secmaster
    from tickflow.sources.landing import write_reference
    from tickflow.sources.universe import build_universe, fx_rates

    settings = Settings()
    paths = write_reference(settings, build_universe(instruments, seed), fx_rates(seed))
    rows = seed_secmaster(settings)
    out.print(f"security master: {rows} instruments; FX file {paths[1]}")


@reference_app.command("change")
def reference_change(
    listings: Annotated[int, typer.Option(help="New instruments to list.")] = 0,
    delistings: Annotated[int, typer.Option(help="Instruments to delist.")] = 0,
    tick_changes: Annotated[int, typer.Option(help="Instruments whose tick size doubles.")] = 0,
    sector_changes: Annotated[int, typer.Option(help="Instruments moved to another sector.")] = 0,
    fx_move: Annotated[float, typer.Option(help="Largest relative FX move (0.01 = 1%); drops a new FX file.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Which instruments change.")] = 1,
) -> None:
    """Change the source systems as markets do, so the next refresh has work."""
    from tickflow.reference.sources import Changes, apply_changes

    done = apply_changes(Settings(), Changes(listings, delistings, tick_changes, sector_changes, fx_move), seed)
    out.print(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in done.items()) + (" , FX moved" if fx_move else ""))


@reference_app.command("refresh")
def reference_refresh(
    max_drop: Annotated[float, typer.Option(help="Reject a load that shrinks by more than this fraction.")] = 0.2,
) -> None:
    """Refresh the Hive reference tables from the source systems (quality gates, SCD2, atomic swap)."""
    from tickflow.reference.refresh import refresh_with_session
    from tickflow.reference.sources import read_fx_file

    settings = Settings()
    started = time.monotonic()
    read_fx_file(settings)  # before Spark starts, as the services the refresh needs
    require(settings, "metastore", "postgres")
    for r in refresh_with_session(settings, max_drop=max_drop):
        out.print(
            f"[green]{r.dataset}[/] load {r.load_version}: {r.rows_in} rows in, {r.rows_current} current, "
            f"{r.opened} opened, {r.closed} closed, {r.seconds:.1f}s"
        )
    console.print(f"reference refresh done in {time.monotonic() - started:.1f}s")
