"""The serving API on the real HBase (and the schema registry its history cells need), served by uvicorn on
a free port: latest by selection, history ranges, the live feed (SSE) and the errors, for instruments
written through MarketDataStore.write (the same cells the Connect sink writes)."""

from __future__ import annotations

import json
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tickflow.hbase.store import MarketDataStore
from tickflow.serving.app import create_app
from tickflow.serving.auth import login_url
from tickflow.serving.server import running
from tickflow.serving.settings import ServingSettings
from tickflow.settings import Settings

pytestmark = pytest.mark.integration
T0 = time.time_ns() // 1000 - 60_000_000  # µs, a minute ago: inside md:history's TTL
TOKEN = secrets.token_urlsafe(32)  # the server's, by setting; needed when the stack runs secured
AS_A_CLIENT = {"Authorization": f"Bearer {TOKEN}"}  # ignored outside secured mode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def event(instrument: str, at_us: int, **fields: Any) -> dict[str, Any]:
    """A whole EnrichedEvent (every required field: md:history stores the record itself)."""
    as_of = {f"{name}_as_of": at_us for name in ("bid_price", "ask_price", "last_price") if name in fields}
    return {"instrument_id": instrument, "event_time": at_us, "event_count": 1, "enriched": True,
            "ingest_time": at_us, "processed_time": at_us, "batch_id": 0, **as_of, **fields}  # fmt: skip


@pytest.fixture(scope="module")
def store(hbase_stack: Settings) -> MarketDataStore:
    return MarketDataStore(hbase_stack)


@pytest.fixture(scope="module")
def instruments(store: MarketDataStore) -> list[str]:
    """Two instruments no other test writes, with three records each, a second apart."""
    ids = [f"TEST:{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for n, instrument in enumerate(ids):
        store.write(
            event(instrument, T0 + i * 1_000_000, bid_price=100.0 + n + i, ask_price=100.5 + n + i,
                  mid=100.25 + n + i, symbol=f"SYM{n}", sector="Testing")
            for i in range(3)
        )  # fmt: skip
    return ids


@pytest.fixture(scope="module")
def base_url(hbase_stack: Settings, instruments: list[str]) -> Iterator[str]:
    serving = ServingSettings(reference_from_hive=False, poll_ms=100, heartbeat_s=0.5, max_selection=3, token=TOKEN)
    with running(create_app(hbase_stack, serving), "127.0.0.1", free_port()) as url:
        yield url


def get(base_url: str, path: str) -> httpx.Response:
    return httpx.get(f"{base_url}{path}", headers=AS_A_CLIENT, timeout=30)


def test_health_and_search(base_url: str, instruments: list[str]) -> None:
    assert get(base_url, "/healthz").json()["status"] == "ok"
    found = get(base_url, f"/api/instruments?q={instruments[1]}").json()["instruments"]
    assert found[0] == {"instrument_id": instruments[1], "symbol": "SYM1", "name": None, "exchange": None,
                        "currency": None, "asset_class": None, "sector": "Testing", "in_reference": False}  # fmt: skip


def test_latest_by_selection_is_what_was_written(base_url: str, instruments: list[str]) -> None:
    before = time.time_ns() // 1_000_000
    body = get(base_url, f"/api/latest?ids={instruments[1]},{instruments[0]}").json()
    rows = {row["instrument_id"]: row for row in body["instruments"]}
    assert [row["instrument_id"] for row in body["instruments"]] == [instruments[1], instruments[0]]
    assert body["missing"] == []
    newest_ms = (T0 + 2_000_000) // 1000
    for n, instrument in enumerate(instruments):
        row = rows[instrument]
        assert row["fields"]["bid_price"]["value"] == 102.0 + n
        assert row["fields"]["ask_price"]["value"] == 102.5 + n
        assert row["fields"]["bid_price"]["as_of"] == newest_ms
        assert row["fields"]["bid_price"]["stale_ms"] >= before - newest_ms
        assert row["derived"] == {"mid": 102.25 + n}
        assert row["reference"] == {"symbol": f"SYM{n}", "sector": "Testing", "enriched": True}
        assert row["meta"]["event_time"] == newest_ms


def test_history_is_newest_first_within_the_range(base_url: str, instruments: list[str]) -> None:
    ms = [(T0 + i * 1_000_000) // 1000 for i in range(3)]
    records = get(base_url, f"/api/history/{instruments[0]}").json()["records"]
    assert [r["event_time"] for r in records] == ms[::-1]
    assert [r["mid"] for r in records] == [102.25, 101.25, 100.25]
    ranged = get(base_url, f"/api/history/{instruments[0]}?start={ms[0]}&end={ms[1]}").json()["records"]
    assert [r["event_time"] for r in ranged] == [ms[1], ms[0]]
    assert [r["event_time"] for r in get(base_url, f"/api/history/{instruments[0]}?limit=1").json()["records"]] == [
        ms[2]
    ]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/api/latest?ids=TEST:nobody-has-this", 404, "Unknown instrument TEST:nobody-has-this"),
        ("/api/history/TEST:nobody-has-this", 404, "Unknown instrument"),
        ("/api/stream?ids=TEST:nobody-has-this", 404, "Unknown instrument"),
        ("/api/latest?ids=A,B,C,D", 400, "At most 3 instruments"),
        ("/api/stream?ids=A,B,C,D", 400, "At most 3 instruments"),
        ("/api/latest", 400, "Select at least one instrument"),
        ("/api/history/{0}?start=2&end=1", 400, "start is after end"),
        ("/api/instruments?limit=0", 400, "limit"),
    ],
)
def test_errors_are_one_sentence(base_url: str, instruments: list[str], path: str, status: int, words: str) -> None:
    response = get(base_url, path.format(instruments[0]))
    assert response.status_code == status
    assert words in response.json()["error"]
    assert list(response.json()) == ["error"]


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            yield name, json.loads(line[len("data: ") :])


def test_the_live_feed_sends_a_snapshot_then_only_what_changed(
    base_url: str, store: MarketDataStore, instruments: list[str]
) -> None:
    url = f"{base_url}/api/stream?ids={','.join(instruments)}"
    with httpx.stream("GET", url, headers=AS_A_CLIENT, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())
        name, snapshot = next(events)
        assert name == "snapshot"
        assert {row["instrument_id"] for row in snapshot["instruments"]} == set(instruments)
        assert next(events)[0] == "heartbeat"  # nothing changed for heartbeat_s
        at = time.time_ns() // 1000
        store.write([event(instruments[1], at, bid_price=200.0, mid=200.25)])
        written = time.monotonic()
        name, update = next(events)
        assert name == "update", (name, update)
        assert time.monotonic() - written < 5
        at_ms = at // 1000
        assert update["instruments"] == [
            {"instrument_id": instruments[1], "fields": {"bid_price": {"value": 200.0, "as_of": at_ms}},
             "derived": {"mid": 200.25},
             "meta": {"event_time": at_ms, "ingest_time": at_ms, "processed_time": at_ms}}
        ]  # fmt: skip


def test_secured_mode_asks_for_the_token_then_serves_the_same_data(
    hbase_stack: Settings, instruments: list[str]
) -> None:
    """The real app with TICKFLOW_SECURED: a token given by setting (the shared state directory gets none)."""
    token = secrets.token_urlsafe(32)
    settings = hbase_stack.model_copy(update={"secured": True})
    serving = ServingSettings(reference_from_hive=False, token=token)
    latest = f"/api/latest?ids={instruments[0]}"
    with running(create_app(settings, serving), "127.0.0.1", free_port()) as url:
        refused = httpx.get(f"{url}{latest}", timeout=30)
        assert refused.status_code == 401
        assert "send the token (TICKFLOW_SERVING_TOKEN on the server)" in refused.json()["error"]
        assert get(url, "/healthz").json()["status"] == "ok"  # open: no data in it
        bearer = httpx.get(f"{url}{latest}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert bearer.json()["instruments"][0]["fields"]["bid_price"]["value"] == 102.0
        with httpx.Client(base_url=url, timeout=30) as browser:
            assert browser.get(login_url(url, token), follow_redirects=True).status_code == 200  # the page
            assert browser.get(latest).json()["instruments"][0]["instrument_id"] == instruments[0]
            with browser.stream("GET", f"/api/stream?ids={instruments[0]}") as feed:
                assert next(sse_events(feed.iter_lines()))[0] == "snapshot"
