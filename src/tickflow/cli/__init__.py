"""The ``tickflow`` command line: one module per command group, each of which only parses its options, calls
the module that does the work and prints what it answers (data on stdout; logs, progress and errors on
stderr, see ``output``). Every command runs inside ``errors.speaking_errors``: one sentence, exit code 1."""

from __future__ import annotations

import typer

from tickflow.cli import connect, feed, hbase, stack, stream, trades, warehouse
from tickflow.cli.backfill import backfill
from tickflow.cli.errors import SpeakingGroup, speaking_errors
from tickflow.cli.serve import serve

__all__ = ["app", "main", "speaking_errors"]

app = typer.Typer(
    cls=SpeakingGroup, help="tickflow: market-data platform on Kafka, Spark, Hive and HBase.", no_args_is_help=True
)
app.add_typer(stack.app, name="stack")
app.add_typer(feed.schemas_app, name="schemas")
app.add_typer(feed.topics_app, name="topics")
app.add_typer(warehouse.hive_app, name="hive")
app.add_typer(warehouse.reference_app, name="reference")
app.add_typer(hbase.app, name="hbase")
app.add_typer(stream.snapshot_app, name="snapshot")
app.add_typer(connect.app, name="connect")
app.add_typer(trades.app, name="trades")
app.add_typer(stream.app, name="stream")
app.command()(serve)
app.command()(feed.smoke)
app.command()(feed.simulate)
app.command("backfill")(backfill)


def main() -> None:
    app()
