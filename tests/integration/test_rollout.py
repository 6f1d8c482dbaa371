"""MarketEvent v1 -> v2 rolled out while the stream runs: v2 is registered mid-run, a v1 producer goes on beside
the v2 one, the stream decodes both writers in the same micro-batches (it looks a new writer id up when it first
meets it), and v2's trade cancels clear the last trade they name (docs/architecture.md, "Cancels")."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from tests.support.fill import judge_input, read_topic
from tests.support.kafka import as_admin
from tests.support.stream import progress_offsets, published, stream_settings, wait_until_caught_up
from tickflow.avro_codec import compile_encoder, confluent_prefix
from tickflow.schemas import load, register
from tickflow.settings import REPO_ROOT, Settings
from tickflow.sources.feed import FeedConfig, run_feed
from tickflow.stream.app import build_query

RELEASED = REPO_ROOT / "tests" / "fixtures" / "schemas" / "released"  # what producers wrote before v2
MARKET_EVENT = "tickflow.md.MarketEvent"


def trade_events(now_us: int) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Trades and cancels on instruments of their own (the feed never touches them), and what each must show
    last: a cancelled last trade is gone (as of its cancel); a cancel of an older trade leaves the last one."""
    base = {"source": "trades", "sequence": 0, "trade_size": 100, "trade_side": "buy"}
    events = [
        ("ROLL:CXL", {**base, "event_id": "A1", "event_time": now_us, "trade_id": "A1", "trade_price": 10.0}),
        ("ROLL:CXL", {"event_id": "A1#cancel", "source": "trades", "sequence": 1, "event_time": now_us + 1000,
                      "cancelled_trade_id": "A1"}),
        ("ROLL:OLD", {**base, "event_id": "B1", "event_time": now_us, "trade_id": "B1", "trade_price": 20.0}),
        ("ROLL:OLD", {**base, "event_id": "B2", "event_time": now_us + 500, "trade_id": "B2", "trade_price": 21.0}),
        ("ROLL:OLD", {"event_id": "B1#cancel", "source": "trades", "sequence": 2, "event_time": now_us + 1000,
                      "cancelled_trade_id": "B1"}),
    ]  # fmt: skip
    last = {
        "ROLL:CXL": {"trade_id": None, "trade_price": None, "trade_id_as_of": now_us + 1000,
                     "cancelled_trade_id": "A1"},
        "ROLL:OLD": {"trade_id": "B2", "trade_price": 21.0, "trade_id_as_of": now_us + 500,
                     "cancelled_trade_id": "B1"},
    }  # fmt: skip
    return [(key, {"instrument_id": key, **event}) for key, event in events], last


def test_v1_and_v2_writers_side_by_side_while_the_stream_runs_and_cancels_clear_the_last_trade(
    stack: Settings, reference_data: Settings, spark: Any, topics: dict[str, str], tmp_path: Path
) -> None:
    subject, events_topic = f"{topics['events']}-value", topics["events"]
    v1_settings = stack.model_copy(update={"schemas_dir": RELEASED})
    v1_id = register(v1_settings, subject, load(MARKET_EVENT, RELEASED), compatibility=None).schema_id

    def feed(settings: Settings, schema_id: int, seed: int) -> None:
        config = FeedConfig(rate=5_000, count=4_000, seed=seed, instruments=25, topic=events_topic)
        run_feed(settings, config, schema_id)

    feed(v1_settings, v1_id, seed=11)  # before the rollout: v1 only
    query, _ = build_query(spark, stack, stream_settings(topics, tmp_path))
    try:

        def processed() -> dict[str, int]:
            return progress_offsets(query, events_topic)

        wait_until_caught_up(stack, events_topic, processed)

        # The rollout, the stream running: v2 registered, a v2 producer starts while the v1 one goes on.
        v2 = load(MARKET_EVENT, stack.schemas_dir)
        v2_id = register(stack, subject, v2, compatibility=None).schema_id
        assert v2_id != v1_id
        v1_producer = threading.Thread(target=feed, args=(v1_settings, v1_id, 12))
        v1_producer.start()
        feed(stack, v2_id, seed=13)
        encode = compile_encoder(v2.definition, prefix=confluent_prefix(v2_id))
        trades, last = trade_events(time.time_ns() // 1000)
        producer = Producer(as_admin(stack))
        for key, event in trades:
            producer.produce(events_topic, encode(event), key)
        assert producer.flush(30) == 0
        v1_producer.join(60)
        wait_until_caught_up(stack, events_topic, processed)
        assert query.exception() is None
    finally:
        query.stop()

    writers = Counter(int.from_bytes(m.value()[1:5], "big") for m in read_topic(stack, events_topic))
    assert writers[v1_id] == 8_000 and writers[v2_id] == 4_000 + len(trades), writers
    expected = judge_input(stack, events_topic)
    final, times, records = published(stack, topics["enriched"])
    assert times == expected.times, "every event of either writer was published"
    assert not read_topic(stack, topics["dlq"]), "no record of either writer was dead-lettered"
    fed = {i: v for i, v in expected.final.items() if not i.startswith("ROLL:")}  # no cancel among them
    assert {i: v for i, v in final.items() if i in fed} == fed

    newest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: (r["batch_id"], r["event_time"])):
        newest[record["instrument_id"]] = record
    for instrument, want in last.items():
        got = {name: newest[instrument][name] for name in want}
        got["trade_id_as_of"] = int(got["trade_id_as_of"].timestamp() * 1_000_000 + 0.5)
        assert got == want, instrument
    cancel = [r for r in records if r["instrument_id"] == "ROLL:CXL" and r["cancelled_trade_id"] == "A1"]
    assert cancel and cancel[0]["cancelled_trade_id_as_of"] == cancel[0]["event_time"], "the history keeps the cancel"
