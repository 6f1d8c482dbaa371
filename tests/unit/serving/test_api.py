"""The API on a store that needs no HBase: a latest view with a cleared trade, and the history of a cancel next
to a v1 record (no cancelled_* fields)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tickflow.hbase.store import Latest, MarketDataStore
from tickflow.serving.app import create_app
from tickflow.serving.settings import ServingSettings
from tickflow.settings import Settings

T = 1_764_000_000_123_456  # µs: the cancel
TRADE = ("trade_id", "trade_price", "trade_size", "trade_side")


class CancelledTrade(MarketDataStore):
    """md:latest: one instrument whose last trade T1 was cancelled at T; md:history: the cancel, then a v1 record."""

    def latest(self, instrument_ids: Sequence[str]) -> dict[str, Latest]:
        values = {name: None for name in TRADE} | {"cancelled_trade_id": "T1", "bid_price": 10.5, "symbol": "A"}
        as_of = dict.fromkeys([*TRADE, "cancelled_trade_id"], T // 1000) | {"bid_price": T // 1000 - 5}
        return {i: Latest(i, values, as_of) for i in instrument_ids if i == "TEST:A"}

    def scan_latest(self, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {"TEST:A": {"symbol": "A"}}

    def history(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        cancel = {"instrument_id": "TEST:A", "event_time": T, "cancelled_trade_id": "T1",
                  "cancelled_trade_id_as_of": T, **{f"{name}_as_of": T for name in TRADE}}  # fmt: skip
        v1 = {"instrument_id": "TEST:A", "event_time": T - 9_000, "trade_id": "T1", "trade_price": 101.5,
              "trade_id_as_of": T - 9_000, "trade_price_as_of": T - 9_000}  # fmt: skip
        return [cancel, v1]

    def ping(self) -> None:
        pass


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(state_dir=tmp_path, secured=False)
    app = create_app(settings, ServingSettings(reference_from_hive=False), store=CancelledTrade(settings))
    with TestClient(app) as client:
        yield client


def test_the_latest_view_of_a_cleared_trade_has_null_trade_fields_with_as_of_and_the_cancel(api: TestClient) -> None:
    response = api.get("/api/latest?ids=TEST:A")
    assert response.status_code == 200
    (row,) = response.json()["instruments"]
    for name in TRADE:
        assert row["fields"][name]["value"] is None
        assert row["fields"][name]["as_of"] == T // 1000
    assert row["fields"]["cancelled_trade_id"]["value"] == "T1"
    assert row["fields"]["bid_price"]["value"] == 10.5


def test_the_history_marks_the_cancel_and_keeps_v1_records(api: TestClient) -> None:
    response = api.get("/api/history/TEST:A")
    assert response.status_code == 200
    cancel, v1 = response.json()["records"]
    assert (cancel["cancel_of"], cancel["event_time"], cancel["cancelled_trade_id_as_of"]) == (
        "T1",
        T // 1000,
        T // 1000,
    )
    assert "trade_price" not in cancel and cancel["trade_price_as_of"] == T // 1000
    assert "cancel_of" not in v1 and "cancelled_trade_id" not in v1
    assert (v1["trade_price"], v1["event_time"]) == (101.5, (T - 9_000) // 1000)
