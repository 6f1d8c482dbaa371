"""``tickflow backfill``: reprocess a range of md.events with the stream's code (as the backfill DAG does)."""

from __future__ import annotations

from typing import Annotated

import typer

from tickflow.cli.errors import require
from tickflow.cli.output import JsonFlag, console, out, print_json
from tickflow.settings import Settings


def backfill(
    start: Annotated[str, typer.Option(help="First event time, ISO 8601 (UTC unless an offset is given).")],
    end: Annotated[str, typer.Option(help="Event time the backfill ends at (exclusive).")],
    instrument: Annotated[list[str] | None, typer.Option(help="An instrument id; repeat it. Default: all.")] = None,
    target: Annotated[
        str,
        typer.Option(
            help="hbase (md:history), archive (md.enriched_archive), both, or check (compare the live md.enriched "
            "with the recomputation, write nothing but a row of ops.replay_checks)."
        ),
    ] = "both",
    as_json: JsonFlag = False,
) -> None:
    """Reprocess md.events over [start, end) with the stream's code, enriched as of event time (as the DAG)."""
    from tickflow.backfill.job import backfill_with_session
    from tickflow.backfill.request import BackfillRequest, BackfillSettings
    from tickflow.stream.settings import StreamSettings
    from tickflow.stream.transform import Transform

    settings = Settings()
    # Before Spark starts: the request, the settings, the files (enrichment SQL, schema) and the services.
    request = BackfillRequest.parse(start, end, instrument, target)
    options = BackfillSettings()
    Transform.build(settings, StreamSettings())
    require(settings, "kafka", "registry", "metastore", *(["hbase-thrift"] if request.writes_hbase else []))
    report = backfill_with_session(settings, request, options, progress=console.print)
    if as_json:
        print_json({"summary": report.summary(), "check": report.check.as_json() if report.check else None})
    else:
        out.print(f"[green]backfill done[/]: {report.summary()}")
