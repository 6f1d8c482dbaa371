"""The serving API's pure logic: selections, rows as the page shows them, staleness, the live feed's
diffs and the instrument search. No I/O here, so all of it is tested without HBase or Hive.

Every time the API returns is in milliseconds since the epoch (what a browser's ``Date`` takes);
staleness is ``now - as_of`` in milliseconds, never negative.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from tickflow.hbase.layout import CellType, EventLayout
from tickflow.hbase.store import Latest

# The family-e fields of md:latest, grouped as the page shows them (anything else is "meta").
REFERENCE_FIELDS = ("symbol", "instrument_name", "exchange", "currency", "asset_class", "sector", "lot_size",
                    "tick_size", "reference_version", "enriched")  # fmt: skip
DERIVED_FIELDS = ("mid", "spread", "spread_bps", "trade_notional", "fx_rate_usd", "mid_usd", "last_price_usd",
                  "trade_notional_usd")  # fmt: skip
SECTIONS = ("fields", "reference", "derived", "meta")
INSTRUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


class RequestError(ValueError):
    """A request the API refuses; ``str()`` is the one sentence it answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_selection(raw: str | None, max_size: int) -> list[str]:
    """``A,B,C`` -> ["A", "B", "C"]: blanks dropped, duplicates removed, order kept, size bounded."""
    ids = list(dict.fromkeys(part.strip() for part in (raw or "").split(",") if part.strip()))
    if not ids:
        raise RequestError("Select at least one instrument: pass ids=A,B (instrument ids, comma-separated).")
    if len(ids) > max_size:
        raise RequestError(f"At most {max_size} instruments can be selected at once; this request has {len(ids)}.")
    for instrument_id in ids:
        check_instrument_id(instrument_id)
    return ids


def check_instrument_id(instrument_id: str) -> str:
    if not INSTRUMENT_ID.match(instrument_id):
        raise RequestError(f"{instrument_id[:80]!r} is not an instrument id (letters, digits and . _ : -, at most 64).")
    return instrument_id


def parse_time_ms(raw: str | None, name: str) -> int | None:
    """A query parameter's time: milliseconds since the epoch, or ISO 8601 (UTC when no offset is given)."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(
            f"{name}={text[:40]!r} is not a time: give milliseconds since the epoch or ISO 8601 (2026-01-31T09:30:00Z)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class HistoryQuery:
    start_ms: int | None
    end_ms: int | None
    limit: int

    @property
    def since_us(self) -> int | None:
        return None if self.start_ms is None else self.start_ms * 1000

    @property
    def until_us(self) -> int | None:
        # The whole last millisecond: an event at end_ms + 0.5 ms is still "at" end_ms.
        return None if self.end_ms is None else self.end_ms * 1000 + 999


def history_query(start: str | None, end: str | None, limit: int | None, default: int, most: int) -> HistoryQuery:
    start_ms, end_ms = parse_time_ms(start, "start"), parse_time_ms(end, "end")
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise RequestError("start is after end: give a start at or before the end of the range.")
    if limit is not None and not 1 <= limit <= most:
        raise RequestError(f"limit must be between 1 and {most}; it was {limit}.")
    return HistoryQuery(start_ms, end_ms, limit or default)


def staleness_ms(now_ms: int, as_of_ms: int) -> int:
    """How old a value is; a value from a clock slightly ahead of ours counts as fresh, not negative."""
    return max(0, now_ms - as_of_ms)


def _display(kind: CellType, value: Any) -> Any:
    """Timestamps (µs in HBase) as ms, like every time in the API."""
    return value // 1000 if kind is CellType.TIMESTAMP and value is not None else value


def row_state(latest: Latest, layout: EventLayout) -> dict[str, dict[str, Any]]:
    """One instrument's state by section, without staleness (which changes every millisecond, the data not):
    ``fields`` name -> {value, as_of}; the other sections name -> value. A cleared register (the trade fields
    after a cancel of their trade) is ``{"value": None, "as_of": <when it was cleared>}``: "no value as of
    then", which the page tells from a field never set (absent)."""
    state: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for name, value in latest.values.items():
        kind = layout.types[name]
        if name in latest.as_of_ms:
            state["fields"][name] = {"value": _display(kind, value), "as_of": latest.as_of_ms[name]}
        elif name in REFERENCE_FIELDS:
            state["reference"][name] = value
        elif name in DERIVED_FIELDS:
            state["derived"][name] = value
        elif name != "instrument_id":
            state["meta"][name] = _display(kind, value)
    return state


def with_staleness(instrument_id: str, state: Mapping[str, Mapping[str, Any]], now_ms: int) -> dict[str, Any]:
    """A row as /api/latest returns it: the state, each filled field with its staleness."""
    row: dict[str, Any] = {"instrument_id": instrument_id}
    for section, entries in state.items():
        if section == "fields":
            row[section] = {
                name: {**cell, "stale_ms": staleness_ms(now_ms, cell["as_of"])} for name, cell in entries.items()
            }
        else:
            row[section] = dict(entries)
    return row


def history_record(types: Mapping[str, CellType], record: Mapping[str, Any]) -> dict[str, Any]:
    """A md:history record as /api/history returns it: times in ms (event_time comes from the row key, in µs),
    and ``cancel_of``, the id of the trade it cancels, on the record of a cancel itself (its
    ``cancelled_trade_id_as_of`` is its event time; later records carry the cancel forward). Compared in µs,
    before the times lose their sub-millisecond part. A v1 record (no cancelled_* fields) is never a cancel."""
    out = {k: v // 1000 if types.get(k) is CellType.TIMESTAMP or k == "event_time" else v for k, v in record.items()}
    cancelled = record.get("cancelled_trade_id")
    if cancelled is not None and record.get("cancelled_trade_id_as_of") == record.get("event_time"):
        out["cancel_of"] = cancelled
    return out


State = Mapping[str, Mapping[str, Any]]


def diff_states(before: Mapping[str, State], after: Mapping[str, State]) -> list[dict[str, Any]]:
    """What the live feed sends: per instrument whose state changed, only the entries that changed
    (a new instrument: all of its state). Cells are never deleted in md:latest, so nothing is removed: a
    cleared register is a change of its entry to a None value with a new as-of."""
    changes = []
    for instrument_id, state in after.items():
        old = before.get(instrument_id, {})
        row: dict[str, Any] = {}
        for section, entries in state.items():
            previous = old.get(section, {})
            changed = {name: value for name, value in entries.items() if previous.get(name) != value}
            if changed:
                row[section] = changed
        if row:
            changes.append({"instrument_id": instrument_id, **row})
    return changes


@dataclass(frozen=True)
class Instrument:
    """An instrument as the search lists it (reference data, or what md:latest says of it)."""

    instrument_id: str
    symbol: str | None = None
    name: str | None = None
    exchange: str | None = None
    currency: str | None = None
    asset_class: str | None = None
    sector: str | None = None
    in_reference: bool = True  # False: seen in md:latest only (unknown to ref.instruments)

    @classmethod
    def seen(cls, instrument_id: str, values: Mapping[str, Any]) -> Instrument:
        """What md:latest says of an instrument (its family-e attributes)."""
        return cls(
            instrument_id, values.get("symbol"), values.get("instrument_name"), values.get("exchange"),
            values.get("currency"), values.get("asset_class"), values.get("sector"), in_reference=False,
        )  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _rank(instrument: Instrument, query: str) -> int | None:
    """Lower is better; None: no match. Exact id or symbol first, then prefixes, then words of the name,
    then anywhere in id, symbol or name, then the sector."""
    ident, symbol = instrument.instrument_id.lower(), (instrument.symbol or "").lower()
    name, sector = (instrument.name or "").lower(), (instrument.sector or "").lower()
    if query in (ident, symbol):
        return 0
    if symbol.startswith(query):
        return 1
    if ident.startswith(query) or ident.partition(":")[2].startswith(query):
        return 2
    if any(word.startswith(query) for word in re.split(r"[\s\-/.,]+", name)):
        return 3
    if query in ident or query in symbol or query in name:
        return 4
    if query in sector:
        return 5
    return None


def search(instruments: Iterable[Instrument], query: str, limit: int) -> list[Instrument]:
    """The best ``limit`` matches of ``query`` by id, symbol, name or sector (case-insensitive);
    an empty query lists instruments by symbol."""
    wanted = query.strip().lower()
    ranked = []
    for instrument in instruments:
        rank = 0 if not wanted else _rank(instrument, wanted)
        if rank is not None:
            label = (instrument.symbol or instrument.instrument_id).lower()
            ranked.append((rank, label, instrument.instrument_id, instrument))
    ranked.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in ranked[:limit]]


def merge_catalogue(reference: Sequence[Instrument], seen: Sequence[Instrument]) -> dict[str, Instrument]:
    """Reference data first; instruments only md:latest knows are added, flagged as not in reference data."""
    merged = {i.instrument_id: i for i in reference}
    for instrument in seen:
        merged.setdefault(instrument.instrument_id, instrument)
    return merged
