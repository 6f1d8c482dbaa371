"""Fuzzed records through the decoder: whatever the bytes, each comes out once, a valid event or rejected with a reason.

An example is a whole batch of records, since a Spark job costs about a second; it is fetched as the fill task
gets it (Arrow, then pandas). Derandomized, so every run sees the same batches, and never shrunk, a shrink
step being a Spark job too: a failure names the record instead.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.fill import read_topic
from tests.support.kafka import as_admin
from tests.support.stream import progress_offsets, stream_settings, wait_until_caught_up
from tickflow.avro_codec import compile_encoder, confluent_prefix, zigzag_varint
from tickflow.fill.semantics import FILL_FIELDS, FILL_TYPES
from tickflow.settings import Settings
from tickflow.sources.feed import FeedConfig, run_feed
from tickflow.stream.app import build_query
from tickflow.stream.decode import (
    MAX_SIZE,
    NOT_FRAMED,
    PRICES,
    SIZES,
    TEXTS,
    Limits,
    decoded_events,
    decoded_events_jvm,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
V1 = json.loads((ROOT / "schemas" / "tickflow.md.MarketEvent.avsc").read_text())
V2 = json.loads((ROOT / "tests" / "fixtures" / "schemas" / "tickflow.md.MarketEvent.venue.avsc").read_text())
WRITERS = {1: json.dumps(V1), 2: json.dumps(V2)}
ENCODERS = {1: compile_encoder(V1, prefix=confluent_prefix(1)), 2: compile_encoder(V2, prefix=confluent_prefix(2))}
NOW = int(datetime.now(UTC).timestamp() * 1_000_000)
LONGS = st.integers(-(2**63), 2**63 - 1)
HOUR = 3_600_000_000
EVENT_COLUMNS = ("event_key", "instrument_id", "event_time", *FILL_FIELDS)
BATCHES = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@pytest.fixture(scope="module", params=[decoded_events, decoded_events_jvm], ids=["sql", "jvm"])
def decoder(request: pytest.FixtureRequest) -> Any:
    """Each implementation: Spark SQL (what the stream runs) and the JVM operator (jvm/stream)."""
    return request.param


def abridged(data: bytes | None) -> str:
    """Bytes as Python shows them, the first 60 of a long value only."""
    return repr(data) if data is None or len(data) <= 60 else f"{data[:60]!r}... ({len(data)} bytes)"


@dataclass(frozen=True, repr=False)
class Sent:
    """A record and what must become of it: a valid event (``reason`` None, equal to ``event`` when given), or
    rejected with a reason matching the pattern ``reason``; with ``either``, valid or rejected."""

    key: bytes | None
    value: bytes
    reason: str | None = None
    event: dict[str, Any] | None = None
    either: bool = False

    def __repr__(self) -> str:
        return f"Sent({abridged(self.key)}, {abridged(self.value)}, {self.reason!r}{', either' if self.either else ''})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


texts = st.text(max_size=12)
huge = st.builds(lambda char, size: char * size, st.sampled_from("xé€𝄞"), st.integers(100_000, 101_000))
prices = st.floats(min_value=0.0, exclude_min=True, allow_infinity=False)
keys = st.one_of(st.none(), st.just(b""), st.binary(max_size=16), st.sampled_from([b"XNAS:MSFT", b"XNAS:AAPL "]))
writer_ids = st.sampled_from(sorted(ENCODERS))
mics = st.sampled_from(["XNAS", "XNYS", "XLON"])
symbols = st.from_regex(r"[A-Z][A-Z0-9.]{0,11}", fullmatch=True) | texts
sources = st.sampled_from(["quotes", "prices", "trades", "unknown"])
optional = {
    "double": st.none() | prices,
    "long": st.none() | st.integers(0, MAX_SIZE),
    "string": st.none() | texts,
    "enum": st.none() | st.sampled_from(["buy", "sell", "unknown"]),
}
since_epoch = st.integers(0, NOW)
SOURCE_FIELDS = {
    "quotes": ("bid_price", "bid_size", "ask_price", "ask_size"),
    "prices": ("last_price", "close_price", "reference_price"),
    "trades": ("trade_id", "trade_price", "trade_size", "trade_side"),
    "unknown": tuple(FILL_TYPES),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A MarketEvent the validator must pass: ids that are not blank, finite prices > 0 with bid <= ask, sizes
    >= 0, an event time that is not in the future; the fields of its source, or any for 'unknown'."""
    source = draw(sources)
    event = dict.fromkeys(FILL_TYPES) | {name: draw(optional[FILL_TYPES[name]]) for name in SOURCE_FIELDS[source]}
    if event["bid_price"] is not None and event["ask_price"] is not None and event["bid_price"] > event["ask_price"]:
        event["bid_price"], event["ask_price"] = event["ask_price"], event["bid_price"]
    return {
        **event,
        "event_id": "E" + draw(texts),
        "instrument_id": f"{draw(mics)}:{draw(symbols)}",
        "source": source,
        "event_time": draw(since_epoch),
        "sequence": draw(LONGS),
        "venue": draw(optional["string"]),
    }


@st.composite
def valid_records(draw: st.DrawFn) -> Sent:
    """A valid event written with v1 or v2, keyed by its instrument_id."""
    event = draw(events())
    return Sent(event["instrument_id"].encode(), ENCODERS[draw(writer_ids)](event), event=event)


@st.composite
def huge_records(draw: st.DrawFn) -> Sent:
    """A valid event with a text of 100k characters (up to 400 KB): an id, the trade id or the v2 venue."""
    event, name = draw(events()), draw(st.sampled_from(["event_id", "instrument_id", "trade_id", "venue"]))
    event[name] = draw(huge)
    writer = 2 if name == "venue" else draw(writer_ids)
    return Sent(event["instrument_id"].encode(), ENCODERS[writer](event), event=event)


def framing_reason(value: bytes) -> str | None:
    """The reason of a record whose magic byte or schema id is wrong, None when both are right."""
    if len(value) < 6 or value[0] != 0:
        return re.escape(NOT_FRAMED)
    schema_id = int.from_bytes(value[1:5], "big")
    return None if schema_id in WRITERS else f"^unknown schema id {schema_id}$"


@st.composite
def random_records(draw: st.DrawFn) -> Sent:
    """Random bytes, some behind the prefix of a known schema id."""
    prefix = draw(st.just(b"") | st.sampled_from([confluent_prefix(1), confluent_prefix(2)]))
    value = prefix + draw(st.binary(max_size=48))
    reason = framing_reason(value)
    return Sent(draw(keys), value, reason or ".", either=reason is None)


@st.composite
def damaged_records(draw: st.DrawFn) -> Sent:
    """A valid record cut short, with bits flipped, bytes appended, a corrupt length prefix or another schema id."""
    good = draw(valid_records())
    key, value, schema_id = good.key, good.value, good.value[4]
    damage = draw(st.sampled_from(["cut", "flip", "append", "length", "unknown id", "other id"]))
    if damage == "cut":
        cut = value[: draw(st.integers(0, len(value) - 1))]
        return Sent(key, cut, framing_reason(cut) or f"^undecodable Avro body for schema id {schema_id}$")
    if damage == "flip":
        flipped = bytearray(value)
        for bit in draw(st.lists(st.integers(0, len(value) * 8 - 1), min_size=1, max_size=3)):
            flipped[bit // 8] ^= 1 << bit % 8
        return Sent(key, bytes(flipped), ".", either=True)
    if damage == "append":
        extra = draw(st.binary(min_size=1, max_size=20))
        return Sent(key, value + extra, rf"^{len(extra)} bytes left over after the record \(schema id {schema_id}\)$")
    if damage == "length":
        length = draw(st.integers(2**16, 2**31) | st.integers(2**31, 2**62) | st.integers(-(2**62), -1))
        corrupt = confluent_prefix(schema_id) + zigzag_varint(length) + draw(st.binary(max_size=20))
        return Sent(key, corrupt, f"^undecodable Avro body for schema id {schema_id}$")
    if damage == "unknown id":
        unknown = draw(st.integers(0, 2**32 - 1).filter(lambda i: i not in WRITERS))
        return Sent(key, confluent_prefix(unknown) + value[5:], f"^unknown schema id {unknown}$")
    return Sent(key, confluent_prefix(3 - schema_id) + value[5:], ".")


@st.composite
def impossible_records(draw: st.DrawFn) -> Sent:
    """A well-formed record of an event that must not be filled, with the reason it gets."""
    event = draw(events())
    key = event["instrument_id"].encode()
    flaw = draw(
        st.sampled_from(["price", "size", "future", "past", "crossed", "no instrument", "no id", "key", "utf-8"])
    )
    if flaw == "price":
        name = draw(st.sampled_from(PRICES))
        event[name] = draw(st.sampled_from([float("nan"), float("-inf"), 0.0, -0.0]) | st.floats(max_value=0.0))
        reason = rf"^{name} \S+ is not positive$"
        if draw(st.booleans()):
            event[name], reason = float("inf"), f"^{name} Infinity is not finite$"
    elif flaw == "size":
        name = draw(st.sampled_from(SIZES))
        event[name] = draw(st.integers(-(2**63), -1) | st.integers(MAX_SIZE + 1, 2**63 - 1))
        reason = f"^{name} {event[name]} is {'negative' if event[name] < 0 else f'above {MAX_SIZE}'}"
    elif flaw == "future":
        event["event_time"] = draw(st.integers(NOW + HOUR, 2**63 - 1))
        reason = "s in the future$"
    elif flaw == "past":
        event["event_time"] = draw(st.integers(-(2**63), -1))
        reason = rf"^event_time {event['event_time']} \(µs since the epoch\) is before 1970$"
    elif flaw == "crossed":
        low, high = sorted(draw(st.lists(prices, min_size=2, max_size=2, unique=True)))
        event["bid_price"], event["ask_price"] = high, low
        reason = r"^bid \S+ above ask \S+ beyond the 0\.00% tolerance$"
    elif flaw == "no instrument":
        event["instrument_id"] = draw(st.sampled_from(["", " ", "   "]))
        key, reason = draw(keys), "^missing instrument_id$"
    elif flaw == "no id":
        event["event_id"], reason = draw(st.sampled_from(["", " "])), "^missing event_id$"
    elif flaw == "key":
        own = key
        key, reason = draw(keys.filter(lambda other: other != own)), "^message key (None|'.*') is not the instrument_id"
    else:
        marker, name = "\x01\x02\x03\x04", draw(st.sampled_from(TEXTS))
        event[name] = marker
        broken = draw(st.sampled_from([b"\xff\xfe\xfd\xfc", b"\xc3\x28ab", b"\xed\xa0\x80a", b"\xc0\xafab"]))
        key = broken if name == "instrument_id" else key
        value = ENCODERS[draw(writer_ids)](event).replace(marker.encode(), broken)
        return Sent(key, value, f"^({'|'.join(TEXTS)}) is not valid UTF-8$")
    return Sent(key, ENCODERS[draw(writer_ids)](event), reason)


records = st.one_of(valid_records(), random_records(), damaged_records(), impossible_records())


@st.composite
def batches(draw: st.DrawFn, records: st.SearchStrategy[Sent]) -> list[Sent]:
    """50 to 200 records, with up to three valid events carrying a text of 100k characters among them."""
    batch = draw(st.lists(records, min_size=50, max_size=200))
    for record in draw(st.lists(huge_records(), max_size=3)):
        batch.insert(draw(st.integers(0, len(batch))), record)
    return batch


def decode(decoder: Any, spark: Any, sent: list[Sent]) -> list[dict[str, Any]]:
    """The records through the decoder (decoded_events or decoded_events_jvm), fetched as the fill task gets them:
    Arrow, then pandas."""
    now = datetime.now(UTC).replace(tzinfo=None)
    raw = spark.createDataFrame(
        [(record.key, record.value, "md.events", 0, offset, now) for offset, record in enumerate(sent)],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    )
    table = decoder(raw, V2, WRITERS, Limits()).toArrow()
    table.to_pandas()
    return sorted(table.to_pylist(), key=lambda row: row["offset"])


def check(sent: list[Sent], rows: list[dict[str, Any]]) -> None:
    """One row per record, in order; each valid as expected and intact, or rejected with its key and bytes."""
    assert [row["offset"] for row in rows] == list(range(len(sent)))
    event_keys: dict[str, int] = {}
    for record, row in zip(sent, rows, strict=True):
        context = f"{record!r} -> {row!r:.400}"
        if row["reason"] is None:
            assert record.reason is None or record.either, context
            assert row["kafka_key"] is None and row["value"] is None, context
            assert record.key is not None and row["instrument_id"].encode() == record.key, context
            assert row["event_key"] is not None and row["event_time"] is not None, context
            if record.event is not None:
                assert row["event_time"] == record.event["event_time"], context
                assert {name: row[name] for name in FILL_FIELDS} == {n: record.event[n] for n in FILL_FIELDS}, context
                assert event_keys.setdefault(record.event["event_id"], row["event_key"]) == row["event_key"], context
        else:
            assert record.reason is not None, context
            assert re.search(record.reason, row["reason"], re.DOTALL), context
            assert row["kafka_key"] == record.key and row["value"] == record.value, context
            assert all(row[name] is None for name in EVENT_COLUMNS), context
    assert len(set(event_keys.values())) == len(event_keys)


@BATCHES
@given(sent=batches(records))
def test_every_record_comes_out_once_valid_or_with_its_reason(spark: Any, decoder: Any, sent: list[Sent]) -> None:
    """Random, damaged and impossible records beside valid ones: nothing raises, nothing is lost or invented,
    a rejected record keeps its key and bytes, and each kind of damage gets the reason it deserves."""
    check(sent, decode(decoder, spark, sent))


@settings(BATCHES, max_examples=8)
@given(sent=batches(valid_records()))
def test_valid_events_all_come_out_valid_and_intact(spark: Any, decoder: Any, sent: list[Sent]) -> None:
    """Any valid event, of either schema version, with texts up to 100k characters and the extremes of every
    number, passes validation with its instrument, time and fields as sent."""
    rows = decode(decoder, spark, sent)
    check(sent, rows)
    assert all(row["reason"] is None for row in rows)


def fuzzed_burst() -> list[Sent]:
    """Records drawn by the strategies above (derandomized: the same burst every run) whose fate is certain:
    no record that may come out either way, and valid events with event ids of their own (a repeated id is a
    duplicate the fill drops)."""
    drawn: list[Sent] = []

    @settings(BATCHES, max_examples=8, phases=[Phase.generate])
    @given(batch=batches(records))
    def draw(batch: list[Sent]) -> None:
        drawn.extend(batch)

    draw()
    ids = Counter(record.event["event_id"] for record in drawn if record.event is not None)
    return [r for r in drawn if not r.either and (r.event is None or ids[r.event["event_id"]] == 1)]


def registered_as(sent: Sent, ids: dict[int, int]) -> Sent:
    """The record with the schema id of its prefix (1 for v1, 2 for v2 here) replaced by the id the registry
    gave that version; any other prefix is left as it is."""
    value = sent.value
    if len(value) >= 5 and value[0] == 0 and int.from_bytes(value[1:5], "big") in ids:
        value = confluent_prefix(ids[int.from_bytes(value[1:5], "big")]) + value[5:]
    return Sent(sent.key, value, sent.reason, sent.event)


def event_times(settings: Settings, topic: str, skip: set[bytes] = frozenset()) -> set[tuple[str, int]]:  # type: ignore[assignment]
    """(instrument, event time in µs) of every record of an Avro topic but those in ``skip``, times read as the
    longs they are (a fuzzed time may be far outside what a Python datetime holds)."""
    client = SchemaRegistryClient(settings.registry_client_config)
    readers: dict[int, Any] = {}
    pairs = set()
    for message in read_topic(settings, topic):
        if message.value() in skip:
            continue
        schema_id = int.from_bytes(message.value()[1:5], "big")
        if schema_id not in readers:
            text = client.get_schema(schema_id).schema_str.replace('"logicalType"', '"ignoredLogicalType"')
            readers[schema_id] = fastavro.parse_schema(json.loads(text))
        record = fastavro.schemaless_reader(io.BytesIO(message.value()[5:]), readers[schema_id], None)
        pairs.add((record["instrument_id"], record["event_time"]))
    return pairs


def test_a_fuzzed_burst_amid_normal_flow_goes_to_the_dlq_and_stops_nothing(
    stack: Settings, reference_data: Settings, spark: Any, topics: dict[str, str], tmp_path: Path
) -> None:
    """The burst between two runs of the simulator, through the running stream: it keeps going, the DLQ holds
    exactly the burst's invalid records (key and bytes), and every valid event, simulated or fuzzed, is
    published."""
    registry = SchemaRegistryClient(stack.registry_client_config)
    subject = f"{topics['events']}-value"
    ids = {version: int(registry.register_schema(subject, Schema(WRITERS[version], "AVRO"))) for version in WRITERS}
    burst = [registered_as(record, ids) for record in fuzzed_burst()]
    rejected = Counter(record.value for record in burst if record.reason is not None)
    assert len(burst) > 300 and len(rejected) > 100

    stream = stream_settings(topics, tmp_path)
    query, _ = build_query(spark, stack, stream)
    try:
        feed = FeedConfig(rate=20_000, count=3_000, seed=17, instruments=25, out_of_order=0.1, topic=topics["events"])
        run_feed(stack, feed, ids[1])
        producer = Producer(as_admin(stack))
        for record in burst:
            producer.produce(topics["events"], record.value, record.key)
        producer.flush(30)
        run_feed(stack, dataclasses.replace(feed, seed=18), ids[1])
        wait_until_caught_up(stack, topics["events"], lambda: progress_offsets(query, topics["events"]))
        assert query.exception() is None and query.isActive
    finally:
        query.stop()

    dlq = read_topic(stack, topics["dlq"])
    assert Counter(message.value() for message in dlq) == rejected
    assert Counter(message.key() for message in dlq) == Counter(r.key for r in burst if r.reason is not None)
    valid = {(r.event["instrument_id"], r.event["event_time"]) for r in burst if r.reason is None and r.event}
    simulated = event_times(stack, topics["events"], skip={record.value for record in burst})
    assert len(simulated) > 5_000 and len(valid) > 100
    assert event_times(stack, topics["enriched"]) == simulated | valid
