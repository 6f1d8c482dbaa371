"""The serving API's pure logic: selections, times, staleness, the live feed's diffs, search ranking."""

from __future__ import annotations

import json

import pytest

from tickflow.hbase.layout import event_layout
from tickflow.hbase.store import Latest
from tickflow.serving.model import (
    Instrument,
    RequestError,
    diff_states,
    history_query,
    history_record,
    merge_catalogue,
    parse_selection,
    parse_time_ms,
    row_state,
    search,
    staleness_ms,
    with_staleness,
)
from tickflow.settings import Settings


def test_a_selection_is_trimmed_deduplicated_and_keeps_its_order() -> None:
    assert parse_selection(" XNAS:AAPL, XLON:VOD ,,XNAS:AAPL", 5) == ["XNAS:AAPL", "XLON:VOD"]


@pytest.mark.parametrize(("raw", "words"), [(None, "at least one"), (" , ", "at least one"), ("A,B,C", "At most 2"),
                                            ("A,B;DROP", "not an instrument id")])  # fmt: skip
def test_a_bad_selection_is_refused_in_one_sentence(raw: str | None, words: str) -> None:
    with pytest.raises(RequestError, match=words) as refused:
        parse_selection(raw, 2)
    assert refused.value.status == 400
    assert str(refused.value).endswith(".") and "\n" not in str(refused.value)


def test_times_are_epoch_ms_or_iso_8601_in_utc() -> None:
    assert parse_time_ms("1764000000123", "start") == 1_764_000_000_123
    assert parse_time_ms("2025-11-24T16:00:00Z", "start") == 1_764_000_000_000
    assert parse_time_ms("2025-11-24T16:00:00", "start") == 1_764_000_000_000  # naive: UTC
    assert parse_time_ms("2025-11-24T17:00:00+01:00", "start") == 1_764_000_000_000
    assert parse_time_ms("", "start") is None
    with pytest.raises(RequestError, match="end='soon' is not a time"):
        parse_time_ms("soon", "end")


def test_a_history_query_checks_its_range_and_limit() -> None:
    query = history_query("1000", "2000", None, default=500, most=10_000)
    assert (query.since_us, query.until_us, query.limit) == (1_000_000, 2_000_999, 500)
    with pytest.raises(RequestError, match="start is after end"):
        history_query("2000", "1000", None, 500, 10_000)
    with pytest.raises(RequestError, match="between 1 and 100"):
        history_query(None, None, 101, 500, 100)


def test_staleness_is_now_minus_as_of_never_negative() -> None:
    assert staleness_ms(10_500, 10_000) == 500
    assert staleness_ms(10_000, 10_020) == 0  # a source clock slightly ahead


def latest(bid: float, bid_as_of: int, sector: str = "Tech", mid: float = 1.0) -> Latest:
    values = {"bid_price": bid, "sector": sector, "mid": mid, "event_time": 5_000_000, "instrument_id": "X:A"}
    return Latest("X:A", values, {"bid_price": bid_as_of})


def test_a_row_is_grouped_into_sections_with_times_in_ms() -> None:
    state = row_state(latest(10.5, 4_000), event_layout(Settings()))
    assert state == {"fields": {"bid_price": {"value": 10.5, "as_of": 4_000}}, "reference": {"sector": "Tech"},
                     "derived": {"mid": 1.0}, "meta": {"event_time": 5_000}}  # fmt: skip
    row = with_staleness("X:A", state, now_ms=4_250)
    assert row["fields"]["bid_price"] == {"value": 10.5, "as_of": 4_000, "stale_ms": 250}
    assert row["instrument_id"] == "X:A"


def test_the_live_feed_sends_only_what_changed() -> None:
    layout = event_layout(Settings())
    before = {"X:A": row_state(latest(10.5, 4_000), layout)}
    assert diff_states(before, before) == []
    after = {"X:A": row_state(latest(10.5, 4_000, mid=1.5), layout), "X:B": {"derived": {"mid": 2.0}}}
    assert diff_states(before, after) == [
        {"instrument_id": "X:A", "derived": {"mid": 1.5}},
        {"instrument_id": "X:B", "derived": {"mid": 2.0}},  # new to the feed: all of it
    ]
    # The same value observed again later is a change: its staleness restarts.
    again = {"X:A": row_state(latest(10.5, 4_900), layout)}
    assert diff_states(before, again) == [
        {"instrument_id": "X:A", "fields": {"bid_price": {"value": 10.5, "as_of": 4_900}}}
    ]


TRADE = ("trade_id", "trade_price", "trade_size", "trade_side")


def test_a_cleared_trade_is_none_with_its_as_of_and_serialises_with_the_cancel() -> None:
    values = {name: None for name in TRADE} | {"cancelled_trade_id": "T1", "bid_price": 10.5, "trade_notional": 99.0}
    as_of = dict.fromkeys(TRADE, 7_000) | {"cancelled_trade_id": 7_000, "bid_price": 4_000}
    state = row_state(Latest("X:A", values, as_of), event_layout(Settings()))
    assert state["fields"]["trade_price"] == {"value": None, "as_of": 7_000}
    assert state["fields"]["cancelled_trade_id"] == {"value": "T1", "as_of": 7_000}
    row = json.loads(json.dumps(with_staleness("X:A", state, now_ms=7_250)))
    for name in TRADE:
        assert row["fields"][name] == {"value": None, "as_of": 7_000, "stale_ms": 250}
    assert row["fields"]["cancelled_trade_id"]["value"] == "T1"
    # the live feed: the trade's entries change to None, the cancel appears
    before = {"X:A": row_state(Latest("X:A", {"trade_price": 101.5}, {"trade_price": 5_000}), event_layout(Settings()))}
    (change,) = diff_states(before, {"X:A": state})
    assert change["fields"]["trade_price"] == {"value": None, "as_of": 7_000}


def test_a_history_record_of_a_cancel_says_which_trade_it_cancels() -> None:
    types = event_layout(Settings()).types
    t = 1_764_000_000_123_456  # µs
    cancel = {"instrument_id": "X:A", "event_time": t, "cancelled_trade_id": "T1", "cancelled_trade_id_as_of": t,
              "trade_id_as_of": t, "bid_price": 10.5}  # fmt: skip
    assert history_record(types, cancel) == {
        "instrument_id": "X:A", "event_time": t // 1000, "cancelled_trade_id": "T1",
        "cancelled_trade_id_as_of": t // 1000, "trade_id_as_of": t // 1000, "bid_price": 10.5, "cancel_of": "T1",
    }  # fmt: skip
    # a later record carries the cancel forward: not a cancel, even within the same millisecond
    later = {**cancel, "event_time": t + 500}
    assert "cancel_of" not in history_record(types, later)
    v1 = {"instrument_id": "X:A", "event_time": t, "trade_id": "T0", "trade_id_as_of": t - 1_000}
    assert history_record(types, v1) == {"instrument_id": "X:A", "event_time": t // 1000, "trade_id": "T0",
                                         "trade_id_as_of": (t - 1_000) // 1000}  # fmt: skip


CATALOGUE = [
    Instrument("XNAS:AAPL", "AAPL", "Apple Inc", sector="Technology"),
    Instrument("XNAS:AAP", "AAP", "Advance Auto Parts", sector="Consumer"),
    Instrument("XLON:VOD", "VOD", "Vodafone Group", sector="Telecom"),
    Instrument("XPAR:MC", "MC", "LVMH Moet Hennessy", sector="Consumer"),
    Instrument("XNYS:BAPL", "BAPL", "Bapl Holdings", sector="Technology"),
]


def ids(found: list[Instrument]) -> list[str]:
    return [i.instrument_id for i in found]


def test_search_ranks_exact_then_prefix_then_name_words_then_anywhere_then_sector() -> None:
    assert ids(search(CATALOGUE, "aap", 10)) == ["XNAS:AAP", "XNAS:AAPL"]
    assert ids(search(CATALOGUE, "AAPL", 10)) == ["XNAS:AAPL"]
    assert ids(search(CATALOGUE, "apl", 10)) == ["XNAS:AAPL", "XNYS:BAPL"]  # anywhere, then by symbol
    assert ids(search(CATALOGUE, "group", 10)) == ["XLON:VOD"]  # a word of the name
    assert ids(search(CATALOGUE, "xpar:", 10)) == ["XPAR:MC"]
    assert ids(search(CATALOGUE, "consumer", 10)) == ["XNAS:AAP", "XPAR:MC"]  # by sector, then symbol
    assert ids(search(CATALOGUE, "zzz", 10)) == []
    assert ids(search(CATALOGUE, "", 2)) == ["XNAS:AAP", "XNAS:AAPL"]  # empty: by symbol, limited


def test_reference_data_wins_and_instruments_only_hbase_knows_are_added_and_flagged() -> None:
    seen = [Instrument("XNAS:AAPL", "AAPL?", in_reference=False), Instrument("TEST:1", in_reference=False)]
    merged = merge_catalogue(CATALOGUE[:1], seen)
    assert merged["XNAS:AAPL"] == CATALOGUE[0]
    assert merged["TEST:1"].in_reference is False
