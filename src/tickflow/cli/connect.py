"""``tickflow connect``: the platform's Kafka Connect connectors (the HBase sink, the trades source)."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tickflow.cli.output import JsonFlag, console, jsonable, out, print_json
from tickflow.settings import Settings
from tickflow.sinks.connect import ConnectorState, ConnectorStatus

app = typer.Typer(
    help="Kafka Connect connectors: the HBase sink of md.enriched, the trades source into md.events.",
    no_args_is_help=True,
)


class Connector(StrEnum):
    """The platform's connectors, as `tickflow connect` names them."""

    HBASE = "hbase"
    TRADES = "trades"


ConnectorArgument = Annotated[
    Connector, typer.Argument(help="hbase: md.enriched -> HBase sink; trades: PostgreSQL trades -> md.events.")
]


def _connector_name(which: Connector) -> str:
    from tickflow.sinks.hbase import HBaseSinkSettings
    from tickflow.sources.trades_connector import TradesSourceSettings

    return HBaseSinkSettings().name if which is Connector.HBASE else TradesSourceSettings().name


def _print_connector(status: ConnectorStatus, to: Console = out) -> None:
    colours = {ConnectorState.RUNNING: "green", ConnectorState.FAILED: "red", ConnectorState.PAUSED: "yellow",
               ConnectorState.UNASSIGNED: "yellow"}  # fmt: skip
    table = Table(title=f"connector {status.name}" + (f" ({status.type})" if status.type else ""))
    for column in ("part", "state", "worker", "trace (first line)"):
        table.add_column(column)
    for part, state, worker, trace in status.rows():
        table.add_row(part, f"[{colours.get(state, 'dim')}]{state}[/]", worker, trace)
    to.print(table)


@app.command("deploy")
def deploy(which: ConnectorArgument = Connector.HBASE) -> None:
    """Create or update a connector from the settings (TICKFLOW_HBASE_SINK_*, TICKFLOW_TRADES_SOURCE_*) and
    wait until its tasks run."""
    settings = Settings()
    if which is Connector.TRADES:
        from tickflow.sources import trades_connector
        from tickflow.sources.trade_capture import TABLE

        source = trades_connector.TradesSourceSettings()
        _print_connector(trades_connector.deploy(settings, source))
        console.print(f"[green]{source.name}[/]: PostgreSQL {TABLE} -> {source.topic} (Debezium)")
        return
    from tickflow.sinks.hbase import HBaseSinkSettings
    from tickflow.sinks.hbase import deploy as deploy_sink

    sink = HBaseSinkSettings()
    _print_connector(deploy_sink(settings, sink))
    console.print(
        f"[green]{sink.name}[/]: {sink.topic} -> HBase md:latest, md:history; bad records -> {sink.dlq_topic}"
    )


@app.command("status")
def status(
    which: Annotated[Connector | None, typer.Argument(help="One connector (default: all of them).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The connectors' and their tasks' states; exits 1 unless every one asked about is deployed and runs."""
    from tickflow.sinks.connect import ConnectClient

    settings = Settings()
    wanted = [which] if which else list(Connector)
    names = {_connector_name(w): w for w in wanted}
    found = {s.name: s for s in ConnectClient(settings.connect_urls).statuses()}
    shown = [s for name, s in found.items() if name in names or which is None]
    missing = [(name, w) for name, w in names.items() if name not in found]
    if as_json:
        connectors = [{**jsonable(s), "running": s.running} for s in shown]
        print_json({"connectors": connectors, "missing": [name for name, _ in missing]})
    else:
        for shown_status in shown:
            _print_connector(shown_status)
    for name, w in missing:
        console.print(f"connector {name} is not deployed: `tickflow connect deploy {w.value}` creates it")
    if missing or not all(s.running for s in shown):
        raise typer.Exit(1)


@app.command("restart")
def restart(which: ConnectorArgument = Connector.HBASE) -> None:
    """Restart a connector and all its tasks, and wait until they run: a failed task runs again, and every task
    writes with the latest schema registered (after `tickflow schemas register` of a new version)."""
    from tickflow.retry import wait_for
    from tickflow.sinks.connect import ConnectClient, ConnectError

    name = _connector_name(which)
    client = ConnectClient(Settings().connect_urls)
    client.restart(name)

    def running() -> ConnectorStatus | None:
        found = client.status(name)
        return found if found is not None and found.running else None

    def not_running(_: Exception | None) -> Exception:
        found = client.status(name)
        failures = "; ".join(found.failures) if found else "not deployed"
        return ConnectError(f"Connector {name} did not run again within 120 s ({failures or 'starting'}): read the "
                            "worker's log (`tickflow stack logs connect`).")  # fmt: skip

    time.sleep(1.0)  # the restart is asynchronous: the old tasks report RUNNING until they stop
    _print_connector(wait_for(running, 120.0, interval_s=0.5, timed_out=not_running))


@app.command("delete")
def delete(which: ConnectorArgument = Connector.HBASE) -> None:
    """Delete a connector; its committed offsets stay, so a later deploy resumes where it stopped."""
    from tickflow.sinks.connect import ConnectClient

    name = _connector_name(which)
    existed = ConnectClient(Settings().connect_urls).delete(name)
    out.print(f"connector {name} {'deleted' if existed else 'was not deployed'}")
