"""``tickflow stack``: the local stack of real services (up, down, status, login, logs).

The one command group that imports ``tickflow.stack``: it is the stack's front door.
"""

from __future__ import annotations

import subprocess
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tickflow.cli.output import JsonFlag, console, out, print_event, print_json
from tickflow.errors import StackError
from tickflow.settings import Settings
from tickflow.stack import supervisor
from tickflow.stack.supervisor import ServiceStatus, State

app = typer.Typer(help="The local stack of real services (no Docker needed).", no_args_is_help=True)

ServiceNames = Annotated[list[str] | None, typer.Argument(help="Services (default: all).")]


def _status_table(rows: list[ServiceStatus]) -> Table:
    colours = {State.HEALTHY: "green", State.STARTING: "yellow", State.CRASHED: "red", State.FOREIGN: "red"}
    table = Table(title="tickflow stack", caption="logs are relative to the state directory")
    # Service names stay whole however narrow the terminal; the address and log columns give way.
    table.add_column("service", no_wrap=True, min_width=max((len(row.name) for row in rows), default=7))
    exposed = any(row.exposed for row in rows)  # the column is there only when something needs it
    for column in ("state", "address", *(["beyond loopback"] if exposed else []), "pid", "RSS MB", "log"):
        table.add_column(column)
    for row in rows:
        colour = colours.get(row.state, "dim")
        listeners = f"[red]{escape(' '.join(map(str, row.exposed)))}[/]" if row.exposed else "-"
        table.add_row(
            row.name,
            f"[{colour}]{row.state.value}[/]",
            row.address,
            *([listeners] if exposed else []),
            str(row.pid or "-"),
            f"{row.rss_mb:.0f}" if row.rss_mb is not None else "-",
            str(row.log.relative_to(row.log.parents[1])),
        )
    return table


def exposure_sentence(rows: list[ServiceStatus]) -> str | None:
    """One sentence naming the services that listen beyond loopback, or None when none does."""
    exposed = [f"{row.name} ({', '.join(map(str, row.exposed))})" for row in rows if row.exposed]
    if not exposed:
        return None
    names = exposed[0] if len(exposed) == 1 else f"{', '.join(exposed[:-1])} and {exposed[-1]}"
    verb, pronoun = ("listens", "it") if len(exposed) == 1 else ("listen", "them")
    return (
        f"{names} {verb} beyond loopback, so other machines can connect to {pronoun}: "
        "bind to 127.0.0.1 in the service's configuration or firewall the port."
    )


def _print_status(rows: list[ServiceStatus], to: Console = console, as_json: bool = False) -> None:
    if as_json:
        print_json(rows)
    else:
        to.print(_status_table(rows))
    if sentence := exposure_sentence(rows):
        console.print(f"[red]{escape(sentence)}[/]")


@app.command()
def up(services: ServiceNames = None) -> None:
    """Fetch, configure and start the services, then wait until each is healthy."""
    settings = Settings()
    started = time.monotonic()
    stack = supervisor(settings)
    rows = stack.up(services, on_event=print_event)
    notices = [notice for s in stack.ordered(services) if (notice := s.notice())]
    _print_status(rows)
    for notice in notices:
        console.print(notice)
    console.print(f"stack up in {time.monotonic() - started:.1f}s; state in {settings.root}")


@app.command()
def down(services: ServiceNames = None) -> None:
    """Stop the services this stack started (and nothing else): all, or those named and what needs them."""
    from tickflow.appctl import stop_all

    started = time.monotonic()
    settings = Settings()
    stack = supervisor(settings)
    if "airflow-scheduler" in {service.name for service in stack.with_dependents(services)}:
        # Apps the scheduler's tasks started run in sessions of their own, to outlive the task.
        for running in stop_all(settings.root, settings.app_stop_grace_s):
            print_event(running, "stopped")
    stack.down(services, on_event=print_event)
    console.print(f"stack down in {time.monotonic() - started:.1f}s")


@app.command()
def status(services: ServiceNames = None, as_json: JsonFlag = False) -> None:
    """Show what runs where (on stdout); exits 1 when a service is not healthy or listens beyond loopback."""
    stack = supervisor(Settings())
    rows = [stack.status(s.name) for s in stack.ordered(services)]
    _print_status(rows, to=out, as_json=as_json)
    if any(row.state is not State.HEALTHY or row.exposed for row in rows):
        raise typer.Exit(1)


@app.command()
def login() -> None:
    """Print the Airflow UI's address and its admin login."""
    from tickflow.stack.airflow import AirflowApiServer

    out.print(AirflowApiServer(Settings()).notice())


@app.command()
def logs(
    service: str,
    lines: Annotated[int, typer.Option("-n", help="How many lines from the end.")] = 50,
    follow: Annotated[bool, typer.Option("-f", help="Keep printing new lines.")] = False,
) -> None:
    """Print a service's log file."""
    stack = supervisor(Settings())
    (chosen,) = stack.ordered([service])[-1:]
    if not chosen.log_path.exists():
        raise StackError(f"{service} has no log yet at {chosen.log_path}: start it with `tickflow stack up {service}`.")
    subprocess.run(["tail", f"-n{lines}", *(["-f"] if follow else []), str(chosen.log_path)], check=False)
