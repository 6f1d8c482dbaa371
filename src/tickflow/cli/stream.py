"""``tickflow stream`` (run it here, or start, stop and check the managed copy) and ``tickflow snapshot``."""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from tickflow.cli.errors import require
from tickflow.cli.output import JsonFlag, console, out, print_json
from tickflow.kafka_auth import Principal
from tickflow.runtime.paths import StatePaths
from tickflow.settings import Settings

app = typer.Typer(help="The enrichment stream: run it here (until Ctrl-C), or start, stop and check the managed copy.")
snapshot_app = typer.Typer(help="Snapshots of the stream's forward-fill state in Hive.", no_args_is_help=True)


@app.callback(invoke_without_command=True)
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
    from tickflow.stream.samples import OutputSamples
    from tickflow.stream.settings import StreamSettings

    settings = Settings()
    stream_settings = StreamSettings(trigger_interval=trigger) if trigger else StreamSettings()
    control = EnrichmentStream(settings, stream_settings).control
    log = StatePaths(settings.root).log("stream-stdout")
    claimed = control.claim(sys.argv, log)
    watcher = OutputSamples(settings, stream_settings.output_topic) if samples else None

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
            console.print(f"  [dim]{record}[/]")

    console.print("[cyan]stream[/] starting (Spark, reference data, registry); Ctrl-C stops it")
    # Spark's JVM and Python workers print to the driver's stdout/stderr; send both to the log and keep
    # the terminal for the progress lines (a console on a duplicate of the original stderr).
    log.parent.mkdir(parents=True, exist_ok=True)
    console.file = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
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


@app.command("start")
def start(
    restart: Annotated[bool, typer.Option(help="Stop the running copy first (same checkpoint).")] = False,
) -> None:
    """Start the managed stream in the background (as the enrichment_stream DAG does), unless it runs."""
    from tickflow.stream.control import EnrichmentStream

    stream = EnrichmentStream(Settings())
    result = stream.start(restart=restart)
    out.print(f"enrichment stream {'STARTED' if result.started else 'RUNNING'}: {result.reason}; log {stream.log_path}")


@app.command("stop")
def stop() -> None:
    """Stop the running stream (managed, or in another terminal) after its current micro-batch."""
    from tickflow.stream.control import EnrichmentStream

    stopped = EnrichmentStream(Settings()).stop()
    out.print(f"enrichment stream STOPPED: {f'pid {stopped.pid} stopped' if stopped else 'it was not running'}")


@app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """The stream's health in one line (as the DAG's sensor sees it); exits 1 unless healthy or starting."""
    from tickflow.stream.control import EnrichmentStream, Verdict

    settings = Settings()
    require(settings, "kafka")
    health = EnrichmentStream(settings).health_with_lag(Principal.ADMIN)
    if as_json:
        print_json(health)
    else:
        out.print(health.line())
    if health.verdict not in (Verdict.HEALTHY, Verdict.STARTING):
        raise typer.Exit(1)


@snapshot_app.command("take")
def snapshot_take(
    snapshot_id: Annotated[str | None, typer.Option(help="Default: the current UTC time.")] = None,
) -> None:
    """Export the stream's forward-fill state (as of its last committed micro-batch) to ops.state_snapshots."""
    from tickflow.fill.snapshot import export_snapshot
    from tickflow.stream.settings import StreamSettings

    settings, stream_settings = Settings(), StreamSettings()
    info = export_snapshot(settings, stream_settings.checkpoint(settings), stream_settings.input_topic, snapshot_id)
    out.print(info.line())


@snapshot_app.command("list")
def snapshot_list() -> None:
    """The state snapshots in ops.state_snapshot_index, newest first."""
    from tickflow.fill.snapshot import list_snapshots

    table = Table("snapshot", "taken (UTC)", "micro-batch", "instruments", "registers", "topic")
    for s in list_snapshots(Settings()):
        table.add_row(s.snapshot_id, f"{s.taken_at:%Y-%m-%d %H:%M:%S}", str(s.batch_id), f"{s.instruments:,}",
                      f"{s.registers:,}", s.input_topic)  # fmt: skip
    out.print(table)


@snapshot_app.command("restore")
def snapshot_restore(snapshot_id: Annotated[str, typer.Argument(help="An id from `tickflow snapshot list`.")]) -> None:
    """Stop the managed stream and start it on a new checkpoint from the snapshot (its registers and offsets)."""
    from tickflow.stream.control import EnrichmentStream

    out.print(EnrichmentStream(Settings()).restore(snapshot_id).line())
