"""The ``tickflow`` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from tickflow.errors import StackError, TickflowError
from tickflow.kafka_auth import HEALTH_GROUP, Principal, kafka_client_config
from tickflow.runtime.paths import StatePaths
from tickflow.settings import Settings, explain_invalid
from tickflow.sinks.connect import ConnectorStatus
from tickflow.stack import supervisor
from tickflow.stack.supervisor import ServiceStatus, State
from tickflow.topics import EVENTS

console = Console(stderr=True, soft_wrap=True)  # logs, progress, errors
out = Console(soft_wrap=True)  # data: the tables and lines a status command answers with (`| grep` works)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the status as JSON on stdout (for scripts and jq).")]


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def _print_json(value: Any) -> None:
    """``value`` (dataclasses, enums, paths and addresses included) as JSON on stdout, without Rich's markup."""
    sys.stdout.write(json.dumps(_jsonable(value), indent=2) + "\n")


@contextmanager
def speaking_errors() -> Iterator[None]:
    """What a person can fix comes out as one sentence and exit code 1, never a stack trace: a TickflowError,
    an invalid TICKFLOW_* variable, a service that does not answer. Anything else is a bug and keeps its trace."""
    try:
        yield
    except (typer.Exit, typer.Abort):  # a command's own exit, whatever error it handled on the way
        raise
    except TickflowError as error:
        _fail(str(error))
    except (ValidationError, SettingsError) as error:
        if (sentence := explain_invalid(error)) is None:
            raise
        _fail(sentence)
    except Exception as error:
        if (sentence := _unreachable(error)) is None:
            raise
        _fail(sentence)


def _fail(sentence: str) -> NoReturn:
    # One line whatever the message carries (a driver's multi-line error), and its brackets are not markup.
    console.print(f"[bold red]error:[/] {escape(' '.join(sentence.split()))}")
    raise typer.Exit(1)


# What a client raises when it reaches no server: librdkafka's codes, and the thrift transports' class name
# (pyhive's thrift and happybase's thriftpy2 each have their own TTransportException).
KAFKA_UNREACHABLE = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE")
THRIFT_UNREACHABLE = "TTransportException"


def _unreachable(error: BaseException) -> str | None:
    """One sentence for a client that reached no service (the error or one of its causes), naming the service
    where the error tells its address; None when the error is something else."""
    import httpx
    from confluent_kafka import KafkaException

    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, httpx.TransportError) and (url := _url(cause)):
            return _down(url.host, url.port, type(cause).__name__)
        if isinstance(cause, KafkaException) and cause.args and cause.args[0].name() in KAFKA_UNREACHABLE:
            settings = Settings()
            return _down(settings.host, settings.ports.kafka, cause.args[0].str())
        if isinstance(cause, httpx.TransportError | ConnectionError | TimeoutError) or (
            type(cause).__name__ == THRIFT_UNREACHABLE
        ):
            return (
                f"A service did not answer ({type(cause).__name__}: {cause}): `tickflow stack status` shows which "
                "is down, `tickflow stack up` starts it."
            )
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return None


def _url(error: Any) -> Any:
    try:
        return error.request.url
    except RuntimeError:  # an httpx error raised without its request
        return None


def _down(host: str, port: int | None, reason: str) -> str:
    """The service of the stack at this address did not answer."""
    settings = Settings()
    owners = [s.name for s in supervisor(settings).services.values() if host == settings.host and port in s.ports]
    if not owners:
        return (
            f"Nothing answered at {host}:{port} ({reason}): check the address, or start the stack with "
            "`tickflow stack up`."
        )
    return f"{owners[0]} at {host}:{port} did not answer ({reason}): start it with `tickflow stack up {owners[0]}`."


def _require(settings: Settings, *services: str) -> None:
    """Fail at once, naming the service, when one a command needs does not listen: its clients would retry for
    seconds (librdkafka, the registry's client) or start Spark first, and then say less."""
    supervisor(settings).require(services)


class _SpeakingGroup(TyperGroup):
    """The ``tickflow`` command: every subcommand runs inside :func:`speaking_errors`."""

    def invoke(self, ctx: Any) -> Any:
        with speaking_errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_SpeakingGroup, help="tickflow: market-data platform on Kafka, Spark, Hive and HBase.", no_args_is_help=True
)
stack_app = typer.Typer(help="The local stack of real services (no Docker needed).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
schemas_app = typer.Typer(help="Avro schemas in schemas/ and the schema registry.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
topics_app = typer.Typer(help="The platform's Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
hive_app = typer.Typer(help="The Hive warehouse (through HiveServer2).", no_args_is_help=True)
app.add_typer(hive_app, name="hive")
reference_app = typer.Typer(help="Reference data: source systems and the refresh into Hive.", no_args_is_help=True)
app.add_typer(reference_app, name="reference")
hbase_app = typer.Typer(help="The market-data tables in HBase (through its Thrift server).", no_args_is_help=True)
app.add_typer(hbase_app, name="hbase")
snapshot_app = typer.Typer(help="Snapshots of the stream's forward-fill state in Hive.", no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot")
connect_app = typer.Typer(
    help="Kafka Connect connectors: the HBase sink of md.enriched, the trades source into md.events.",
    no_args_is_help=True,
)
app.add_typer(connect_app, name="connect")
trades_app = typer.Typer(help="Trade capture: trades booked in PostgreSQL (a source without Kafka).",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(trades_app, name="trades")

ServiceNames = Annotated[list[str] | None, typer.Argument(help="Services (default: all).")]


def _print_event(service: str, message: str) -> None:
    console.print(f"[cyan]{service:>12}[/] {message}")


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
        _print_json(rows)
    else:
        to.print(_status_table(rows))
    if sentence := exposure_sentence(rows):
        console.print(f"[red]{escape(sentence)}[/]")


@stack_app.command()
def up(services: ServiceNames = None) -> None:
    """Fetch, configure and start the services, then wait until each is healthy."""
    settings = Settings()
    started = time.monotonic()
    stack = supervisor(settings)
    rows = stack.up(services, on_event=_print_event)
    notices = [notice for s in stack.ordered(services) if (notice := s.notice())]
    _print_status(rows)
    for notice in notices:
        console.print(notice)
    console.print(f"stack up in {time.monotonic() - started:.1f}s; state in {settings.root}")


@stack_app.command()
def down(services: ServiceNames = None) -> None:
    """Stop the services this stack started (and nothing else): all, or those named and what needs them."""
    from tickflow.appctl import stop_all

    started = time.monotonic()
    settings = Settings()
    stack = supervisor(settings)
    if "airflow-scheduler" in {service.name for service in stack.with_dependents(services)}:
        # Apps the scheduler's tasks started run in sessions of their own, to outlive the task.
        for app in stop_all(settings.root, settings.app_stop_grace_s):
            _print_event(app, "stopped")
    stack.down(services, on_event=_print_event)
    console.print(f"stack down in {time.monotonic() - started:.1f}s")


@stack_app.command()
def status(services: ServiceNames = None, as_json: JsonFlag = False) -> None:
    """Show what runs where (on stdout); exits 1 when a service is not healthy or listens beyond loopback."""
    stack = supervisor(Settings())
    rows = [stack.status(s.name) for s in stack.ordered(services)]
    _print_status(rows, to=out, as_json=as_json)
    if any(row.state is not State.HEALTHY or row.exposed for row in rows):
        raise typer.Exit(1)


@stack_app.command()
def login() -> None:
    """Print the Airflow UI's address and its admin login."""
    from tickflow.stack.airflow import AirflowApiServer

    notice = AirflowApiServer(Settings()).notice()
    console.print(notice)


@stack_app.command()
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


@hbase_app.command("migrate")
def hbase_migrate() -> None:
    """Create the md namespace and tables, or change them to the layout (tickflow.hbase.layout); idempotent."""
    from tickflow.hbase.layout import table_specs
    from tickflow.hbase.tables import migrate

    settings = Settings()
    applied = migrate(settings)
    for spec in table_specs(settings):
        console.print(f"[green]applied[/] {spec.name}" if spec.name in applied else f"[dim]as specified[/] {spec.name}")


@hbase_app.command("tables")
def hbase_tables() -> None:
    """List the tables with their column families (versions, TTL, compression, bloom filter, in-memory)."""
    import happybase

    settings = Settings()
    table = Table(title="HBase tables")
    for column in ("table", "family", "versions", "TTL s", "compression", "bloom", "in memory"):
        table.add_column(column)
    try:
        connection = happybase.Connection(*settings.hbase_thrift_address, timeout=10_000)
        for name in connection.tables():
            for family, spec in sorted(connection.table(name).families().items()):
                ttl = spec["time_to_live"]
                table.add_row(name.decode(), family.decode(), str(spec["max_versions"]),
                              "forever" if ttl == 2**31 - 1 else str(ttl), spec["compression"].decode(),
                              spec["bloom_filter_type"].decode(), str(spec["in_memory"]))  # fmt: skip
        connection.close()
    except Exception as error:  # noqa: BLE001 - any failure to reach the server is said in one sentence
        console.print(
            f"[bold red]error:[/] HBase's Thrift server at {settings.host}:{settings.ports.hbase_thrift} did not "
            f"answer ({type(error).__name__}): start it with `tickflow stack up hbase-thrift`."
        )
        raise typer.Exit(1) from None
    console.print(table)


@hbase_app.command("compact")
def hbase_compact(
    timeout_s: Annotated[float, typer.Option(help="Give up waiting after this long.")] = 1800.0,
) -> None:
    """Flush and major-compact md:latest and md:history, and wait until every store holds one file."""
    from tickflow.hbase.compaction import compact, summary

    settings = Settings()
    _require(settings, "hbase")  # else the compaction's HBase client retries for minutes
    result = compact(settings, timeout_s=timeout_s)
    console.print(f"before: {summary(result.before) or 'no store files'}")
    console.print(f"after:  {summary(result.after) or 'no store files'}")
    console.print(result.line())


@hbase_app.command("reconcile")
def hbase_reconcile(
    repair: Annotated[bool, typer.Option(help="Re-put missing or stale instruments from the topic.")] = False,
    snapshot_id: Annotated[str | None, typer.Option(help="Default: the latest state snapshot.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only instruments whose id starts with this.")] = None,
) -> None:
    """Compare md:latest with md.enriched and the latest state snapshot; report to ops.hbase_reconciliation.
    Exits 1 when instruments remain missing or stale."""
    from tickflow.reconcile.run import reconcile

    report = reconcile(Settings(), repair=repair, snapshot_id=snapshot_id, prefix=prefix)
    console.print(report.line())
    if failure := report.failure():
        console.print(f"[bold red]error:[/] {failure}")
        raise typer.Exit(1)


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Default: TICKFLOW_PORT_SERVING (8000).")] = None,
    host: Annotated[str | None, typer.Option(help="Default: TICKFLOW_HOST (loopback).")] = None,
) -> None:
    """Serve the API and the live web page (instruments by selection, read from HBase) until Ctrl-C."""
    import logging

    import uvicorn

    from tickflow.serving.app import create_app
    from tickflow.serving.auth import HideTokens, login_url, serving_token
    from tickflow.serving.settings import ServingSettings
    from tickflow.stack.supervisor import port_in_use

    settings, serving = Settings(), ServingSettings()
    host, port = host or settings.host, port or settings.ports.serving
    if port_in_use(host, port):
        console.print(f"[bold red]error:[/] port {port} on {host} is taken: stop what listens there or pass --port.")
        raise typer.Exit(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("happybase").setLevel(logging.WARNING)  # a line per reconnect while HBase is down
    application = create_app(settings, serving)  # its settings are checked before the announcement
    url = f"http://{host}:{port}/"
    if settings.secured:  # the link logs a browser in, as Jupyter's does; programs send the token as a header
        url = login_url(url, serving_token(settings, serving))
        logging.getLogger("uvicorn.access").addFilter(HideTokens())
        console.print("secured mode: the API and the page ask for the token (Authorization: Bearer <token>)")
    console.print(f"serving the live page at {escape(url)} (API docs at /api/docs); Ctrl-C stops it")
    uvicorn.run(application, host=host, port=port, log_level="info")


@app.command()
def smoke(count: Annotated[int, typer.Option(help="How many Avro records to send.")] = 1000) -> None:
    """Send Avro records through Kafka and the registry and read them back identical."""
    from tickflow.smoke import avro_round_trip

    settings = Settings()
    _require(settings, "kafka", "registry")
    result = avro_round_trip(settings, count)
    console.print(
        f"[green]smoke ok[/]: {result.count} Avro records through {result.topic} "
        f"(schema id {result.schema_id}) in {result.seconds:.2f}s"
    )


@schemas_app.command("register")
def schemas_register() -> None:
    """Register every schema under its subject with BACKWARD compatibility (idempotent)."""
    from tickflow.schemas import register_all, subjects

    settings = Settings()
    subjects(settings.schemas_dir)  # a missing or broken file is said whether the registry runs or not
    _require(settings, "registry")
    registrations = register_all(settings)
    table = Table(title="registered schemas")
    for column in ("subject", "schema id", "version"):
        table.add_column(column)
    for r in registrations:
        table.add_row(r.subject, str(r.schema_id), str(r.version))
    console.print(table)


@topics_app.command("create")
def topics_create() -> None:
    """Create md.events, md.enriched and md.dlq if they do not exist yet."""
    from tickflow.topics import TOPICS, create_topics

    settings = Settings()
    _require(settings, "kafka")
    states = create_topics(settings)
    table = Table(title="topics")
    for column in ("topic", "partitions", "retention", "state"):
        table.add_column(column)
    retention = {t.name: f"{t.retention_ms / 86_400_000:g} d" for t in TOPICS}
    for state in states:
        table.add_row(
            state.name,
            str(state.partitions),
            retention[state.name],
            "created" if state.created else "existed",
        )
    console.print(table)


@app.command()
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
    from tickflow.sources.feed import FeedConfig, FeedStats, run_feed
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
    schema_id = _prepare_feed(settings, topic)
    for path in write_reference(settings, build_universe(instruments, seed), fx_rates(seed)):
        console.print(f"[cyan]simulate[/] reference data for the source systems: {path}")
    try:
        run_feed(settings, config, schema_id, report=progress)
    except KeyboardInterrupt:
        console.print("[cyan]simulate[/] interrupted")


@trades_app.command("prepare")
def trades_prepare() -> None:
    """Create the trade capture schema, table, publication and replication slot where missing."""
    from tickflow.sources.trade_capture import PUBLICATION, SLOT, TABLE, prepare

    done = prepare(Settings())
    console.print(
        f"{TABLE} ready; publication {PUBLICATION} {'created' if done.publication_created else 'existed'}; "
        f"slot {SLOT} {'created' if done.slot_created else 'existed'}"
    )


@trades_app.command("status")
def trades_status(as_json: JsonFlag = False) -> None:
    """The replication slot: read by the connector or not, WAL it keeps; exits 1 unless streaming."""
    from tickflow.sources.trade_capture import slot_state

    state = slot_state(Settings())
    if as_json:
        _print_json({**_jsonable(state), "healthy": state.healthy})
    else:
        out.print(state.line())
    if not state.healthy:
        raise typer.Exit(1)


@trades_app.command("book")
def trades_book(
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
    console.print(f"security master: {rows} instruments; FX file {paths[1]}")


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
    console.print(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in done.items()) + (" , FX moved" if fx_move else ""))


@reference_app.command("refresh")
def reference_refresh(
    max_drop: Annotated[float, typer.Option(help="Reject a load that shrinks by more than this fraction.")] = 0.2,
) -> None:
    """Refresh the Hive reference tables from the source systems (quality gates, SCD2, atomic swap)."""
    from tickflow.reference.refresh import refresh_all
    from tickflow.reference.sources import read_fx_file
    from tickflow.spark import spark_session

    settings = Settings()
    started = time.monotonic()
    read_fx_file(settings)  # before Spark starts, as the services the refresh needs
    _require(settings, "metastore", "postgres")
    spark = spark_session(settings, "tickflow-reference-refresh")
    try:
        reports = refresh_all(spark, settings, max_drop=max_drop)
    finally:
        spark.stop()
    for r in reports:
        console.print(
            f"[green]{r.dataset}[/] load {r.load_version}: {r.rows_in} rows in, {r.rows_current} current, "
            f"{r.opened} opened, {r.closed} closed, {r.seconds:.1f}s"
        )
    console.print(f"reference refresh done in {time.monotonic() - started:.1f}s")


stream_app = typer.Typer(
    help="The enrichment stream: run it here (until Ctrl-C), or start, stop and check the managed copy.",
)
app.add_typer(stream_app, name="stream")


@stream_app.callback(invoke_without_command=True)
def stream(
    context: typer.Context,
    trigger: Annotated[
        str | None, typer.Option(help="Trigger interval, e.g. '250 milliseconds' or '10 seconds'.")
    ] = None,
    samples: Annotated[int, typer.Option(help="Enriched records to print with each progress line.")] = 0,
) -> None:
    """Run the enrichment stream in the foreground (md.events -> md.enriched) until Ctrl-C.

    It takes the same lock as `tickflow stream start` and the enrichment_stream DAG: one copy at most."""
    if context.invoked_subcommand:
        return
    from tickflow.stream.app import run_stream
    from tickflow.stream.control import EnrichmentStream
    from tickflow.stream.progress import events_behind
    from tickflow.stream.settings import StreamSettings

    settings = Settings()
    stream_settings = StreamSettings(trigger_interval=trigger) if trigger else StreamSettings()
    control = EnrichmentStream(settings, stream_settings).control
    log = StatePaths(settings.root).log("stream-stdout")
    claimed = control.claim(sys.argv, log)
    watcher = _OutputSamples(settings, stream_settings.output_topic) if samples else None

    def progress(info: dict[str, Any], counters: Any) -> None:
        seconds = (info.get("durationMs") or {}).get("triggerExecution", 0) / 1000
        behind, age = events_behind(info), counters.output_age_s(time.time())
        console.print(
            f"[cyan]stream[/] batch {info.get('batchId')}  rows {info.get('numInputRows', 0):,} in {seconds:.1f}s  "
            f"processed {info.get('processedRowsPerSecond', 0):,.0f}/s  "
            f"offered {info.get('inputRowsPerSecond', 0):,.0f}/s  "
            f"behind {behind or 0:,} events, {age if age is not None else 0:.1f}s  "
            f"state {counters.instruments:,} instruments  dlq total {counters.dlq:,}"
        )
        for record in watcher.latest(samples) if watcher else ():
            shown = {k: record[k] for k in SAMPLE_FIELDS if record.get(k) is not None}
            console.print(f"  [dim]{shown}[/]")

    console.print("[cyan]stream[/] starting (Spark, reference data, registry); Ctrl-C stops it")
    # Spark's JVM and Python workers print to the driver's stdout/stderr; send both to the log and keep
    # the terminal for the progress lines (a console on a duplicate of the original stderr).
    log.parent.mkdir(parents=True, exist_ok=True)
    terminal = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    console.file = terminal
    with log.open("ab") as sink:
        os.dup2(sink.fileno(), sys.stdout.fileno())
        os.dup2(sink.fileno(), sys.stderr.fileno())
    started = time.monotonic()
    try:
        run_stream(settings, stream_settings, on_progress=progress)
    finally:
        control.release(claimed)
        if watcher:
            watcher.close()
    console.print(f"[cyan]stream[/] stopped after {time.monotonic() - started:,.0f}s (log: {log})")


@stream_app.command("start")
def stream_start(
    restart: Annotated[bool, typer.Option(help="Stop the running copy first (same checkpoint).")] = False,
) -> None:
    """Start the managed stream in the background (as the enrichment_stream DAG does), unless it runs."""
    from tickflow.stream.control import EnrichmentStream

    stream = EnrichmentStream(Settings())
    result = stream.start(restart=restart)
    console.print(
        f"enrichment stream {'STARTED' if result.started else 'RUNNING'}: {result.reason}; log {stream.log_path}"
    )


@stream_app.command("stop")
def stream_stop() -> None:
    """Stop the running stream (managed, or in another terminal) after its current micro-batch."""
    from tickflow.stream.control import EnrichmentStream

    stopped = EnrichmentStream(Settings()).stop()
    console.print(f"enrichment stream STOPPED: {f'pid {stopped.pid} stopped' if stopped else 'it was not running'}")


@stream_app.command("status")
def stream_status(as_json: JsonFlag = False) -> None:
    """The stream's health in one line (as the DAG's sensor sees it); exits 1 unless healthy or starting."""
    from confluent_kafka import Consumer

    from tickflow.stream.control import EnrichmentStream, Verdict

    settings = Settings()
    _require(settings, "kafka")
    consumer = Consumer({**kafka_client_config(settings, Principal.ADMIN), "group.id": HEALTH_GROUP})
    try:
        health = EnrichmentStream(settings).health(consumer)
    finally:
        consumer.close()
    if as_json:
        _print_json(health)
    else:
        out.print(health.line())
    if health.verdict not in (Verdict.HEALTHY, Verdict.STARTING):
        raise typer.Exit(1)


class _OutputSamples:
    """The newest records of the output topic, for people watching the stream."""

    def __init__(self, settings: Settings, topic: str) -> None:
        from confluent_kafka import Consumer
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        self.consumer = Consumer(
            {**kafka_client_config(settings, Principal.ADMIN), "group.id": "tickflow-cli-samples",
             "auto.offset.reset": "latest", "enable.auto.commit": False}
        )  # fmt: skip
        self.consumer.subscribe([topic])
        self.deserialize = AvroDeserializer(SchemaRegistryClient(settings.registry_client_config))

    def latest(self, count: int) -> list[dict[str, Any]]:
        messages = [m for m in self.consumer.consume(10_000, 0.2) if m.error() is None]
        return [self.deserialize(m.value(), None) for m in messages[-count:]]

    def close(self) -> None:
        self.consumer.close()


@snapshot_app.command("take")
def snapshot_take(
    snapshot_id: Annotated[str | None, typer.Option(help="Default: the current UTC time.")] = None,
) -> None:
    """Export the stream's forward-fill state (as of its last committed micro-batch) to ops.state_snapshots."""
    from tickflow.fill.snapshot import export_snapshot
    from tickflow.stream.settings import StreamSettings

    settings, stream_settings = Settings(), StreamSettings()
    info = export_snapshot(settings, stream_settings.checkpoint(settings), stream_settings.input_topic, snapshot_id)
    console.print(info.line())


@snapshot_app.command("list")
def snapshot_list() -> None:
    """The state snapshots in ops.state_snapshot_index, newest first."""
    from tickflow.fill.snapshot import list_snapshots

    snapshots = list_snapshots(Settings())
    table = Table("snapshot", "taken (UTC)", "micro-batch", "instruments", "registers", "topic")
    for s in snapshots:
        table.add_row(s.snapshot_id, f"{s.taken_at:%Y-%m-%d %H:%M:%S}", str(s.batch_id), f"{s.instruments:,}",
                      f"{s.registers:,}", s.input_topic)  # fmt: skip
    console.print(table)


@snapshot_app.command("restore")
def snapshot_restore(snapshot_id: Annotated[str, typer.Argument(help="An id from `tickflow snapshot list`.")]) -> None:
    """Stop the managed stream and start it on a new checkpoint from the snapshot (its registers and offsets)."""
    from tickflow.stream.control import EnrichmentStream

    result = EnrichmentStream(Settings()).restore(snapshot_id)
    console.print(result.line())


@app.command("backfill")
def backfill(
    start: Annotated[str, typer.Option(help="First event time, ISO 8601 (UTC unless an offset is given).")],
    end: Annotated[str, typer.Option(help="Event time the backfill ends at (exclusive).")],
    instrument: Annotated[list[str] | None, typer.Option(help="An instrument id; repeat it. Default: all.")] = None,
    target: Annotated[str, typer.Option(help="hbase (md:history), archive (md.enriched_archive) or both.")] = "both",
) -> None:
    """Reprocess md.events over [start, end) with the stream's code, enriched as of event time (as the DAG)."""
    from tickflow.backfill.job import run_backfill
    from tickflow.backfill.request import BackfillRequest, BackfillSettings
    from tickflow.spark import spark_session
    from tickflow.stream.settings import StreamSettings
    from tickflow.stream.transform import Transform

    settings = Settings()
    # Before Spark starts: the request, the settings, the files (enrichment SQL, schema) and the services.
    request = BackfillRequest.parse(start, end, instrument, target)
    options = BackfillSettings()
    Transform.build(settings, StreamSettings())
    _require(settings, "kafka", "registry", "metastore", *(["hbase-thrift"] if request.writes_hbase else []))
    spark = spark_session(settings, "tickflow-backfill")
    try:
        report = run_backfill(spark, settings, request, options, progress=console.print)
    finally:
        spark.stop()
    console.print(f"[green]backfill done[/]: {report.summary()}")


def _print_connector(status: ConnectorStatus, to: Console = console) -> None:
    colours = {"RUNNING": "green", "FAILED": "red", "PAUSED": "yellow", "UNASSIGNED": "yellow"}
    table = Table(title=f"connector {status.name}" + (f" ({status.type})" if status.type else ""))
    for column in ("part", "state", "worker", "trace (first line)"):
        table.add_column(column)
    for part, state, worker, trace in status.rows():
        table.add_row(part, f"[{colours.get(state, 'dim')}]{state}[/]", worker, trace)
    to.print(table)


class Connector(StrEnum):
    """The platform's connectors, as `tickflow connect` names them."""

    HBASE = "hbase"
    TRADES = "trades"


ConnectorArgument = Annotated[
    Connector, typer.Argument(help="hbase: md.enriched -> HBase sink; trades: PostgreSQL trades -> md.events.")
]


def _connector_name(settings: Settings, which: Connector) -> str:
    from tickflow.sinks.hbase import HBaseSinkSettings
    from tickflow.sources.trades_connector import TradesSourceSettings

    return HBaseSinkSettings().name if which is Connector.HBASE else TradesSourceSettings().name


@connect_app.command("deploy")
def connect_deploy(which: ConnectorArgument = Connector.HBASE) -> None:
    """Create or update a connector from the settings (TICKFLOW_HBASE_SINK_*, TICKFLOW_TRADES_SOURCE_*) and
    wait until its tasks run."""
    settings = Settings()
    if which is Connector.TRADES:
        from tickflow.sources import trades_connector
        from tickflow.sources.trade_capture import TABLE

        source = trades_connector.TradesSourceSettings()
        status = trades_connector.deploy(settings, source)
        _print_connector(status)
        console.print(f"[green]{source.name}[/]: PostgreSQL {TABLE} -> {source.topic} (Debezium)")
        return
    from tickflow.sinks.hbase import HBaseSinkSettings, deploy

    sink = HBaseSinkSettings()
    status = deploy(settings, sink)
    _print_connector(status)
    console.print(
        f"[green]{sink.name}[/]: {sink.topic} -> HBase md:latest, md:history; bad records -> {sink.dlq_topic}"
    )


@connect_app.command("status")
def connect_status(
    which: Annotated[Connector | None, typer.Argument(help="One connector (default: all of them).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The connectors' and their tasks' states; exits 1 unless every one asked about is deployed and runs."""
    from tickflow.sinks.connect import ConnectClient

    settings = Settings()
    wanted = [which] if which else list(Connector)
    names = {_connector_name(settings, w): w for w in wanted}
    found = {s.name: s for s in ConnectClient(settings.connect_url).statuses()}
    shown = [s for name, s in found.items() if name in names or which is None]
    missing = [(name, w) for name, w in names.items() if name not in found]
    if as_json:
        connectors = [{**_jsonable(s), "running": s.running} for s in shown]
        _print_json({"connectors": connectors, "missing": [name for name, _ in missing]})
    else:
        for status in shown:
            _print_connector(status, to=out)
    for name, w in missing:
        console.print(f"connector {name} is not deployed: `tickflow connect deploy {w.value}` creates it")
    if missing or not all(s.running for s in shown):
        raise typer.Exit(1)


@connect_app.command("delete")
def connect_delete(which: ConnectorArgument = Connector.HBASE) -> None:
    """Delete a connector; its committed offsets stay, so a later deploy resumes where it stopped."""
    from tickflow.sinks.connect import ConnectClient

    settings = Settings()
    name = _connector_name(settings, which)
    existed = ConnectClient(settings.connect_url).delete(name)
    console.print(f"connector {name} {'deleted' if existed else 'was not deployed'}")


SAMPLE_FIELDS = ("instrument_id", "event_time", "bid_price", "ask_price", "last_price", "trade_price", "sector",
                 "currency", "mid_usd", "enriched")  # fmt: skip


def _prepare_feed(settings: Settings, topic: str) -> int:
    """Topics exist and the event schema is registered; returns the schema id to frame with."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    from tickflow.schemas import TOPIC_SCHEMAS, load
    from tickflow.topics import SHOWCASE, TOPICS, create_topics

    schema = load(TOPIC_SCHEMAS[EVENTS.name], settings.schemas_dir)
    _require(settings, "kafka", "registry")
    create_topics(settings, (*TOPICS, SHOWCASE) if topic == SHOWCASE.name else TOPICS)
    client = SchemaRegistryClient(settings.registry_client_config)
    try:
        return int(client.register_schema(f"{topic}-value", Schema(schema.text, "AVRO")))
    except Exception as error:
        raise TickflowError(
            f"The schema registry at {settings.registry_url} refused or did not answer ({error}): "
            "start the stack with `tickflow stack up`."
        ) from error


def main() -> None:
    app()


if __name__ == "__main__":
    main()
