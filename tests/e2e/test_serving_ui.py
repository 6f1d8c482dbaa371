"""A person opens the live page, searches, selects two instruments and watches their values, staleness
and prices change as new records land in HBase (written through the store, as the sink writes them)."""

from __future__ import annotations

import random
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tickflow.hbase.store import MarketDataStore
from tickflow.serving.app import create_app
from tickflow.serving.auth import login_url
from tickflow.serving.server import running
from tickflow.serving.settings import ServingSettings
from tickflow.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = secrets.token_urlsafe(32)  # by setting, used when the stack runs secured: no token file in the state dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quote(instrument: str, symbol: str, at_us: int, mid: float) -> dict[str, Any]:
    """A filled record as the stream publishes it: quote, last trade, reference attributes, derived values."""
    bid, ask = round(mid - 0.05, 2), round(mid + 0.05, 2)
    as_of = {f"{f}_as_of": at_us for f in ("bid_price", "ask_price", "bid_size", "ask_size")}
    trade_at = at_us - 1_500_000
    return {
        "instrument_id": instrument, "event_time": at_us, "event_count": 1, "enriched": True,
        "bid_price": bid, "ask_price": ask, "bid_size": 300, "ask_size": 500, **as_of,
        "last_price": round(mid, 2), "last_price_as_of": trade_at, "trade_price": round(mid, 2),
        "trade_price_as_of": trade_at, "trade_size": 100, "trade_size_as_of": trade_at,
        "symbol": symbol, "instrument_name": f"{symbol} Test Corp", "exchange": "TEST", "currency": "USD",
        "sector": "Testing", "mid": round(mid, 3), "spread": round(ask - bid, 4),
        "spread_bps": round((ask - bid) / mid * 10_000, 2), "mid_usd": round(mid, 3),
        "ingest_time": at_us, "processed_time": at_us, "batch_id": 0,
    }  # fmt: skip


@pytest.fixture(scope="module")
def store(hbase_stack: Settings) -> MarketDataStore:
    return MarketDataStore(hbase_stack)


@pytest.fixture(scope="module")
def instruments(store: MarketDataStore) -> dict[str, str]:
    """Two instruments (id -> symbol) with two minutes of history, a record every 2 s."""
    tag = uuid.uuid4().hex[:6].upper()
    chosen = {f"TEST:{tag}{n}": f"E2E{tag}{n}" for n in "AB"}
    now, rng = time.time_ns() // 1000, random.Random(7)
    for n, (instrument, symbol) in enumerate(chosen.items()):
        mid = 100.0 + 50 * n
        records = []
        for i in range(60, 0, -1):
            mid += rng.gauss(0, 0.2)
            records.append(quote(instrument, symbol, now - i * 2_000_000, mid))
        store.write(records)
    return chosen


@pytest.fixture(scope="module")
def base_url(hbase_stack: Settings, instruments: dict[str, str]) -> Iterator[str]:
    serving = ServingSettings(reference_from_hive=False, poll_ms=250, token=TOKEN)
    with running(create_app(hbase_stack, serving), "127.0.0.1", free_port()) as url:
        yield url


def test_select_two_instruments_and_watch_them_update_live(
    base_url: str, instruments: dict[str, str], store: MarketDataStore, page: object, hbase_stack: Settings
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(login_url(base_url, TOKEN) if hbase_stack.secured else base_url)
    tag = next(iter(instruments)).removeprefix("TEST:")[:-1]
    page.fill("#search", f"E2E{tag}")
    results = page.locator("#results button")
    expect(results).to_have_count(2)
    for instrument in instruments:
        page.locator(f'#results button[data-instrument="{instrument}"]').click()
    expect(page.locator("#status")).to_contain_text("live · 2 selected")

    for instrument in instruments:
        bid = page.locator(f'#values td[data-instrument="{instrument}"][data-field="bid_price"]')
        expect(bid.locator(".v")).not_to_be_empty()
        expect(bid.locator(".age")).to_contain_text(" s")  # about two seconds old already
    expect(page.locator("#charts figure canvas")).to_have_count(2)

    # New records land in HBase while the page is open: the table shows them, fresh.
    now = time.time_ns() // 1000
    new_mid = {instrument: 102.5 + 50 * n for n, instrument in enumerate(instruments)}
    store.write(quote(instrument, symbol, now, new_mid[instrument]) for instrument, symbol in instruments.items())
    for instrument in instruments:
        cell = page.locator(f'#values td[data-instrument="{instrument}"][data-field="bid_price"]')
        expect(cell.locator(".v")).to_have_text(f"{new_mid[instrument] - 0.05:g}", timeout=5_000)
        expect(cell.locator(".age")).to_have_class("age fresh")
        mid = page.locator(f'#values td[data-instrument="{instrument}"][data-field="mid"] .v')
        expect(mid).to_have_text(f"{new_mid[instrument]:g}")
    # Staleness ticks between updates with no new data.
    age = page.locator(f'#values td[data-instrument="{next(iter(instruments))}"][data-field="bid_price"] .age')
    first = age.inner_text()
    expect(age).not_to_have_text(first, timeout=5_000)

    outside = [url for url in requested if not url.startswith(base_url)]
    assert not outside, f"the page loaded something from outside the app (no CDN allowed): {outside}"
    page.screenshot(path=str(hbase_stack.root / "logs" / "e2e-serving.png"))


def test_in_secured_mode_the_printed_link_logs_the_browser_in(
    hbase_stack: Settings, instruments: dict[str, str], page: object
) -> None:
    """Without the token the page is a login form; the link `tickflow serve` prints opens the page, whose
    requests (fetch, EventSource) then carry the cookie, with the token gone from the address bar."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    token = secrets.token_urlsafe(32)  # by setting: the shared state directory gets no token file
    settings = hbase_stack.model_copy(update={"secured": True})
    serving = ServingSettings(reference_from_hive=False, poll_ms=250, token=token)
    with running(create_app(settings, serving), "127.0.0.1", free_port()) as url:
        page.goto(url)
        expect(page.locator("#problem")).to_contain_text("This server is in secured mode")
        page.goto(login_url(url, token))
        assert page.url == f"{url}/"
        instrument, symbol = next(iter(instruments.items()))
        page.fill("#search", symbol)
        page.locator(f'#results button[data-instrument="{instrument}"]').click()
        expect(page.locator("#status")).to_contain_text("live · 1 selected")
        cell = page.locator(f'#values td[data-instrument="{instrument}"][data-field="bid_price"] .v')
        expect(cell).not_to_be_empty()
        page.goto("about:blank")  # closes the live feed: the server stops at once instead of waiting for it
