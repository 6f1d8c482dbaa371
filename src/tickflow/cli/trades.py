"""``tickflow trades``: trade capture, trades booked in PostgreSQL and streamed by Debezium."""

from __future__ import annotations

from typing import Annotated

import typer

from tickflow.cli.output import JsonFlag, console, jsonable, out, print_json
from tickflow.errors import StackError
from tickflow.settings import Settings

app = typer.Typer(help="Trade capture: trades booked in PostgreSQL (a source without Kafka).", no_args_is_help=True)


@app.command("prepare")
def prepare() -> None:
    """Create the trade capture schema, table, publication and replication slot where missing."""
    from tickflow.sources.trade_capture import PUBLICATION, SLOT, TABLE, prepare

    done = prepare(Settings())
    out.print(
        f"{TABLE} ready; publication {PUBLICATION} {'created' if done.publication_created else 'existed'}; "
        f"slot {SLOT} {'created' if done.slot_created else 'existed'}"
    )


@app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """The replication slot: read by the connector or not, WAL it keeps; exits 1 unless streaming."""
    from tickflow.sources.trade_capture import slot_state

    state = slot_state(Settings())
    if as_json:
        print_json({**jsonable(state), "healthy": state.healthy})
    else:
        out.print(state.line())
    if not state.healthy:
        raise typer.Exit(1)


@app.command("book")
def book(
    rate: Annotated[float, typer.Option(help="Trades booked per second.")] = 5_000,
    count: Annotated[int | None, typer.Option(help="Stop after this many trades.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    corrections: Annotated[float, typer.Option(help="Corrections (UPDATE) per booked trade.")] = 0.0,
    cancels: Annotated[float, typer.Option(help="Cancels (DELETE) per booked trade.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Same seed, same trades (as for simulate).")] = 7,
    instruments: Annotated[int, typer.Option(help="Size of the instrument universe (as for simulate).")] = 500,
) -> None:
    """Book trades into PostgreSQL (trade_capture.trades) with the simulators' universe and prices."""
    from tickflow.sources.trade_capture import SLOT, BookingConfig, BookingStats, book, prepare

    settings = Settings()

    def progress(stats: BookingStats, target: float) -> None:
        per_txn = stats.booked / max(stats.transactions, 1)
        console.print(
            f"[cyan]trades[/] target {target:,.0f}/s  achieved {stats.rate:,.0f}/s  booked {stats.booked:,}  "
            f"corrected {stats.corrected:,}  cancelled {stats.cancelled:,}  "
            f"{stats.transactions:,} transactions ({per_txn:,.0f} trades each)"
        )

    config = BookingConfig(rate=rate, count=count, duration_s=duration, corrections=corrections,
                           cancels=cancels, seed=seed, instruments=instruments)  # fmt: skip
    try:
        if prepare(settings).slot_created:
            console.print(f"[cyan]trades[/] replication slot {SLOT} created: PostgreSQL keeps the WAL from now on")
    except StackError as error:  # wal_level: the trades are still booked, only not captured
        console.print(f"[yellow]warning:[/] {error} Booking anyway: Debezium will never see these trades.")
    try:
        book(settings, config, report=progress)
    except KeyboardInterrupt:
        console.print("[cyan]trades[/] interrupted")
