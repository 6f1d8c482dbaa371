"""The serving API and its web page (FastAPI): instruments by selection, read from HBase through Thrift.

    GET /                       the page (static/: HTML, one JS module, CSS; uPlot from npm in static/vendor/)
    GET /api/instruments?q=     search the catalogue (reference data + md:latest) by id, symbol, name, sector
    GET /api/latest?ids=A,B     every filled field with value, as-of and staleness, plus reference/derived/meta
                                (a value null with an as-of: cleared, e.g. the trade fields after a cancel)
    GET /api/history/{id}       records newest first, ?start=&end= (ms since the epoch or ISO 8601) &limit=;
                                the record of a trade cancel carries cancel_of, the id of the trade it cancels
    GET /api/stream?ids=A,B     server-sent events: a snapshot, then only what changed, heartbeats meanwhile
    GET /api/health             the health strip: the pipeline's figures and firing alerts, from Prometheus
    GET /healthz                HBase reachable
    GET /metrics                the app's own metrics, for Prometheus to scrape (``metrics.py``)

In secured mode (``TICKFLOW_SECURED``) all but /healthz and /static/ ask for the serving token (``auth.py``);
Prometheus sends it when it scrapes /metrics.

Errors are ``{"error": "<one sentence>"}``: 400 for a bad request, 401 without the token in secured mode,
404 for an unknown instrument, 503 when HBase does not answer (or, for history, whose cells are Avro records,
the schema registry). Every time is in ms since the epoch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from tickflow.hbase.store import HBaseUnavailable, Latest, MarketDataStore, SchemaRegistryUnavailable
from tickflow.monitoring.promql import Prometheus
from tickflow.serving.auth import TokenGate, serving_token, where_the_token_is
from tickflow.serving.catalogue import Catalogue, instruments_from_hbase, instruments_from_hive
from tickflow.serving.health import HealthStrip
from tickflow.serving.metrics import CONTENT_TYPE, RequestMetrics, ServingMetrics
from tickflow.serving.model import (
    Instrument,
    RequestError,
    check_instrument_id,
    diff_states,
    history_query,
    history_record,
    parse_selection,
    row_state,
    with_staleness,
)
from tickflow.serving.settings import ServingSettings
from tickflow.settings import Settings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
VENDOR_FILES = ("uPlot.iife.min.js", "uPlot.min.css")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    settings: Settings | None = None,
    serving: ServingSettings | None = None,
    store: MarketDataStore | None = None,
    catalogue: Catalogue | None = None,
    prometheus: Prometheus | None = None,
) -> FastAPI:
    """The app; tests pass their own store, catalogue or Prometheus, ``tickflow serve`` none."""
    settings = settings or Settings()
    serving = serving or ServingSettings()
    store = store or MarketDataStore(settings, pool_size=8, retry_s=serving.hbase_retry_s)
    metrics = ServingMetrics()
    strip = HealthStrip(prometheus or Prometheus.of(settings))
    if catalogue is None:
        hive = (lambda: instruments_from_hive(settings)) if serving.reference_from_hive else None
        catalogue = Catalogue(hive, lambda: instruments_from_hbase(store))
    known: Catalogue = catalogue  # not None from here on, for the closure below

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        missing = [name for name in VENDOR_FILES if not (STATIC / "vendor" / name).exists()]
        if missing:
            log.warning("static/vendor lacks %s: the page shows no chart until `make setup` fetches uPlot.", missing)
        await anyio.to_thread.run_sync(known.start, serving.reference_refresh_s)
        try:
            yield
        finally:
            known.stop()
            strip.close()

    app = FastAPI(title="tickflow serving", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if settings.secured:
        app.add_middleware(
            TokenGate, token=serving_token(settings, serving), where=where_the_token_is(settings, serving)
        )
    # Added after the gate, so in front of it: the gate's refusals are counted too (route "unmatched").
    app.add_middleware(RequestMetrics, metrics=metrics)
    _answer_errors_in_one_sentence(app)
    app.include_router(_routes(MarketView(store, catalogue, serving, metrics), strip))
    return app


def _answer_errors_in_one_sentence(app: FastAPI) -> None:
    """Every error as ``{"error": "<one sentence>"}`` with its status."""

    @app.exception_handler(RequestError)
    async def refused(_: Request, error: RequestError) -> JSONResponse:
        return _error(error.status, str(error))

    @app.exception_handler(HBaseUnavailable)
    async def hbase_down(_: Request, error: HBaseUnavailable) -> JSONResponse:
        return _error(503, str(error))

    @app.exception_handler(SchemaRegistryUnavailable)
    async def registry_down(_: Request, error: SchemaRegistryUnavailable) -> JSONResponse:
        return _error(503, str(error))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 404:
            path = request.url.path
            return _error(404, f"Nothing is served at {path}: see GET / for the page, /api/docs for the API.")
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
        return _error(400, f"{where}: {first.get('msg', 'invalid')}.")


class MarketView:
    """What the routes answer from: md:latest and md:history through the store, the catalogue of instruments."""

    def __init__(
        self, store: MarketDataStore, catalogue: Catalogue, serving: ServingSettings, metrics: ServingMetrics
    ) -> None:
        self.store, self.catalogue, self.serving, self.metrics = store, catalogue, serving, metrics
        self.layout = store.layout

    def latest(self, ids: list[str]) -> dict[str, Latest]:
        with self.metrics.hbase_read("latest"):
            return self.store.latest(ids)

    def ping(self) -> None:
        with self.metrics.hbase_read("ping"):
            self.store.ping()

    def lookup(self, ids: list[str]) -> dict[str, Latest]:
        """The newest state of each id; 404 for an id neither reference data nor md:latest knows."""
        found = self.latest(ids)
        unknown = [i for i in ids if i not in found and self.catalogue.get(i) is None]
        if unknown:
            raise RequestError(
                f"Unknown instrument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                "find ids with /api/instruments?q=<symbol or name>.",
                status=404,
            )
        new = [i for i in found if self.catalogue.get(i) is None]
        if new:
            self.catalogue.add([Instrument.seen(i, found[i].values) for i in new])
        return found

    def snapshot(self, ids: list[str], found: dict[str, Latest]) -> dict[str, Any]:
        now = now_ms()
        return {
            "now": now,
            "instruments": [with_staleness(i, row_state(found[i], self.layout), now) for i in ids if i in found],
            "missing": [i for i in ids if i not in found],  # known, but nothing stored for it yet
        }

    def history(self, instrument_id: str, start: str | None, end: str | None, limit: int | None) -> dict[str, Any]:
        check_instrument_id(instrument_id)
        serving = self.serving
        query = history_query(start, end, limit, serving.history_limit, serving.history_max_limit)
        with self.metrics.hbase_read("history"):
            records = self.store.history(instrument_id, query.since_us, query.until_us, query.limit)
        if not records:
            self.lookup([instrument_id])  # 404 when nobody knows it; else it has no records in this range
        return {"instrument_id": instrument_id, "records": [history_record(self.layout.types, r) for r in records]}

    async def feed(self, request: Request, selection: list[str], first: dict[str, Latest]) -> AsyncIterator[str]:
        """Polls md:latest (one multi-get for the whole selection) and sends what changed."""
        opened = time.monotonic()
        states = {i: row_state(latest, self.layout) for i, latest in first.items()}
        last_sent, updates = time.monotonic(), 0
        self.metrics.live_feeds.inc()
        try:
            yield "retry: 2000\n\n" + sse("snapshot", self.snapshot(selection, first))
            while not await request.is_disconnected():
                await anyio.sleep(self.serving.poll_ms / 1000)
                try:
                    found = await anyio.to_thread.run_sync(self.latest, selection)
                except HBaseUnavailable as error:
                    yield sse("problem", {"now": now_ms(), "error": str(error)})
                    last_sent = time.monotonic()
                    continue
                current = {i: row_state(latest, self.layout) for i, latest in found.items()}
                changes = diff_states(states, current)
                states = current
                if changes:
                    updates += 1
                    self.metrics.live_feed_updates.inc()
                    yield sse("update", {"now": now_ms(), "instruments": changes})
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent >= self.serving.heartbeat_s:
                    yield sse("heartbeat", {"now": now_ms()})
                    last_sent = time.monotonic()
        finally:
            self.metrics.live_feeds.dec()
            log.info(
                "live feed of %s closed after %.1fs, %d updates",
                ",".join(selection),
                time.monotonic() - opened,
                updates,
            )


def _routes(view: MarketView, strip: HealthStrip) -> APIRouter:
    """The page and the API (the module's docstring lists them)."""
    router = APIRouter()
    max_selection = view.serving.max_selection

    @router.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @router.get("/healthz")
    def healthz() -> dict[str, Any]:
        view.ping()
        catalogue = view.catalogue
        return {
            "status": "ok",
            "hbase": view.store.address,
            "instruments": len(catalogue),
            "catalogue": catalogue.source,
        }

    @router.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(view.metrics.exposition(), media_type=CONTENT_TYPE)

    @router.get("/api/health")
    async def health() -> dict[str, Any]:
        """The health strip's figures and firing alerts; ``{"prometheus": "down", "error": ...}`` (still 200)
        while Prometheus does not answer, so the page says so and goes on showing instruments."""
        return await strip.read()

    @router.get("/api/instruments")
    def instruments(
        q: Annotated[str, Query(max_length=100)] = "", limit: Annotated[int, Query(ge=1, le=200)] = 20
    ) -> dict[str, Any]:
        found = view.catalogue.search(q, limit)
        return {"instruments": [i.as_json() for i in found], "catalogue": view.catalogue.source}

    @router.get("/api/latest")
    def latest(ids: str | None = None) -> dict[str, Any]:
        selection = parse_selection(ids, max_selection)
        return view.snapshot(selection, view.lookup(selection))

    @router.get("/api/history/{instrument_id}")
    def history(
        instrument_id: str, start: str | None = None, end: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        return view.history(instrument_id, start, end, limit)

    @router.get("/api/stream")
    async def stream(request: Request, ids: str | None = None) -> StreamingResponse:
        selection = parse_selection(ids, max_selection)
        first = await anyio.to_thread.run_sync(view.lookup, selection)
        return StreamingResponse(
            view.feed(request, selection, first),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
