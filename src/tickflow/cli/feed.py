"""Feeding market data: ``tickflow topics``, ``tickflow schemas``, ``tickflow simulate`` and ``tickflow smoke``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tickflow.cli.errors import require
from tickflow.cli.output import console, out
from tickflow.settings import Settings
from tickflow.topics import EVENTS

schemas_app = typer.Typer(help="Avro schemas in schemas/ and the schema registry.", no_args_is_help=True)
topics_app = typer.Typer(help="The platform's Kafka topics.", no_args_is_help=True)


@schemas_app.command("register")
def schemas_register() -> None:
    """Register every schema under its subject with BACKWARD compatibility (idempotent)."""
    from tickflow.schemas import register_all, subjects

    settings = Settings()
    subjects(settings.schemas_dir)  # a missing or broken file is said whether the registry runs or not
    require(settings, "registry")
    table = Table(title="registered schemas")
    for column in ("subject", "schema id", "version"):
        table.add_column(column)
    for r in register_all(settings):
        table.add_row(r.subject, str(r.schema_id), str(r.version))
    out.print(table)


@topics_app.command("create")
def topics_create() -> None:
    """Create md.events, md.enriched and md.dlq if they do not exist yet."""
    from tickflow.topics import TOPICS, create_topics

    settings = Settings()
    require(settings, "kafka")
    table = Table(title="topics")
    for column in ("topic", "partitions", "retention", "state"):
        table.add_column(column)
    retention = {t.name: f"{t.retention_ms / 86_400_000:g} d" for t in TOPICS}
    for state in create_topics(settings):
        table.add_row(state.name, str(state.partitions), retention[state.name],
                      "created" if state.created else "existed")  # fmt: skip
    out.print(table)


def smoke(count: Annotated[int, typer.Option(help="How many Avro records to send.")] = 1000) -> None:
    """Send Avro records through Kafka and the registry and read them back identical."""
    from tickflow.smoke import avro_round_trip

    settings = Settings()
    require(settings, "kafka", "registry")
    result = avro_round_trip(settings, count)
    out.print(
        f"[green]smoke ok[/]: {result.count} Avro records through {result.topic} "
        f"(schema id {result.schema_id}) in {result.seconds:.2f}s"
    )


def simulate(
    rate: Annotated[float, typer.Option(help="Total events/s over all sources.")] = 100_000,
    quotes_rate: Annotated[float | None, typer.Option(help="Quote updates/s (default 70% of --rate).")] = None,
    prices_rate: Annotated[float | None, typer.Option(help="Pricing-engine events/s (default 10%).")] = None,
    trades_rate: Annotated[float | None, typer.Option(help="Trades/s (default 20%).")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same events.")] = 7,
    instruments: Annotated[int, typer.Option(help="Size of the instrument universe.")] = 500,
    out_of_order: Annotated[float, typer.Option(help="Fraction of events sent late.")] = 0.0,
    duplicates: Annotated[float, typer.Option(help="Fraction of events re-sent (same event id).")] = 0.0,
    corrupt: Annotated[float, typer.Option(help="Fraction of messages corrupted (for DLQ tests).")] = 0.0,
    topic: Annotated[str, typer.Option(help="Topic to write to.")] = EVENTS.name,
) -> None:
    """Run the three source systems (quotes, prices, trades) into Kafka as Avro."""
    from tickflow.schemas import TOPIC_SCHEMAS, load
    from tickflow.sources.feed import FeedConfig, FeedStats, prepare_feed, run_feed
    from tickflow.sources.landing import write_reference
    from tickflow.sources.simulator import Source
    from tickflow.sources.universe import build_universe, fx_rates

    settings = Settings()

    def progress(stats: FeedStats, target: float) -> None:
        console.print(
            f"[cyan]simulate[/] target {target:,.0f}/s  achieved {stats.rate:,.0f}/s  "
            f"sent {stats.messages:,}  late {stats.late:,}  dup {stats.duplicates:,}  "
            f"corrupt {sum(stats.corrupt.values()):,}  {stats.bytes / max(stats.messages, 1):.0f} B/msg"
        )

    config = FeedConfig(
        rate=rate,
        source_rates={Source.QUOTES: quotes_rate, Source.PRICES: prices_rate, Source.TRADES: trades_rate},
        duration_s=duration,
        count=count,
        seed=seed,
        instruments=instruments,
        out_of_order=out_of_order,
        duplicates=duplicates,
        corrupt=corrupt,
        topic=topic,
    )
    load(TOPIC_SCHEMAS[EVENTS.name], settings.schemas_dir)  # a missing schema file is said whether Kafka runs or not
    require(settings, "kafka", "registry")
    schema_id = prepare_feed(settings, topic)
    for path in write_reference(settings, build_universe(instruments, seed), fx_rates(seed)):
        console.print(f"[cyan]simulate[/] reference data for the source systems: {path}")
    try:
        run_feed(settings, config, schema_id, report=progress)
    except KeyboardInterrupt:
        console.print("[cyan]simulate[/] interrupted")
