"""The ``tickflow`` command line."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tickflow.settings import Settings
from tickflow.stack import StackError, supervisor
from tickflow.stack.supervisor import ServiceStatus, State

app = typer.Typer(
    help="tickflow: market-data platform on Kafka, Spark, Hive and HBase.", no_args_is_help=True
)
stack_app = typer.Typer(help="The local stack of real services (no Docker needed).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")

console = Console(stderr=True)
ServiceNames = Annotated[list[str] | None, typer.Argument(help="Services (default: all).")]


@contextmanager
def speaking_errors() -> Iterator[None]:
    """Turn a StackError into its one sentence and exit code 1, never a stack trace."""
    try:
        yield
    except StackError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(1) from None


def _print_event(service: str, message: str) -> None:
    console.print(f"[cyan]{service:>12}[/] {message}")


def _status_table(rows: list[ServiceStatus]) -> Table:
    colours = {State.HEALTHY: "green", State.STARTING: "yellow", State.CRASHED: "red", State.FOREIGN: "red"}
    table = Table(title="tickflow stack", caption="logs are relative to the state directory")
    for column in ("service", "state", "address", "pid", "RSS MB", "log"):
        table.add_column(column)
    for row in rows:
        colour = colours.get(row.state, "dim")
        table.add_row(
            row.name,
            f"[{colour}]{row.state.value}[/]",
            row.address,
            str(row.pid or "-"),
            f"{row.rss_mb:.0f}" if row.rss_mb is not None else "-",
            str(row.log.relative_to(row.log.parents[1])),
        )
    return table


@stack_app.command()
def up(services: ServiceNames = None) -> None:
    """Fetch, configure and start the services, then wait until each is healthy."""
    settings = Settings()
    started = time.monotonic()
    with speaking_errors():
        rows = supervisor(settings).up(services, on_event=_print_event)
    console.print(_status_table(rows))
    console.print(f"stack up in {time.monotonic() - started:.1f}s; state in {settings.root}")


@stack_app.command()
def down(services: ServiceNames = None) -> None:
    """Stop the services this stack started (and nothing else)."""
    started = time.monotonic()
    with speaking_errors():
        supervisor(Settings()).down(services, on_event=_print_event)
    console.print(f"stack down in {time.monotonic() - started:.1f}s")


@stack_app.command()
def status(services: ServiceNames = None) -> None:
    """Show what runs where; exits 1 when a service is not healthy."""
    stack = supervisor(Settings())
    with speaking_errors():
        rows = [stack.status(s.name) for s in stack.ordered(services)]
    console.print(_status_table(rows))
    if any(row.state is not State.HEALTHY for row in rows):
        raise typer.Exit(1)


@stack_app.command()
def logs(
    service: str,
    lines: Annotated[int, typer.Option("-n", help="How many lines from the end.")] = 50,
    follow: Annotated[bool, typer.Option("-f", help="Keep printing new lines.")] = False,
) -> None:
    """Print a service's log file."""
    stack = supervisor(Settings())
    with speaking_errors():
        (chosen,) = stack.ordered([service])[-1:]
    if not chosen.log_path.exists():
        console.print(f"{service} has no log yet at {chosen.log_path}")
        raise typer.Exit(1)
    subprocess.run(["tail", f"-n{lines}", *(["-f"] if follow else []), str(chosen.log_path)], check=False)


@app.command()
def smoke(count: Annotated[int, typer.Option(help="How many Avro records to send.")] = 1000) -> None:
    """Send Avro records through Kafka and the registry and read them back identical."""
    from tickflow.smoke import avro_round_trip

    with speaking_errors():
        result = avro_round_trip(Settings(), count)
    console.print(
        f"[green]smoke ok[/]: {result.count} Avro records through {result.topic} "
        f"(schema id {result.schema_id}) in {result.seconds:.2f}s"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
