"""What a backfill is asked to do, validated before any Spark starts (no pyspark here).

A request is a half-open event-time range ``[start, end)`` in UTC, the instruments (or all of them) and
the target: ``hbase`` (md:history cells, as the sink writes them), ``archive`` (``md.enriched_archive``),
``both``, or ``check`` (nothing written: the live topic compared with the recomputation, ``replay_check``).
Every invalid value fails with :class:`InvalidBackfill`, one sentence naming the value and
what to give instead; the DAG turns it into AirflowFailException (no retry: a retry cannot fix a parameter).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickflow.errors import TickflowError
from tickflow.topics import ENRICHED, EVENTS

ALL = ("", "all", "*")  # instrument values meaning every instrument
REQUEST_ENV = "TICKFLOW_BACKFILL_REQUEST"  # the request, as JSON, for spark_apps/backfill.py
RESULT_ENV = "TICKFLOW_BACKFILL_RESULT"  # where spark_apps/backfill.py writes its outcome, as JSON


class InvalidBackfill(TickflowError):
    """The request cannot be run as given: a parameter, an unknown instrument or a range without data."""


class Target(StrEnum):
    HBASE = "hbase"
    ARCHIVE = "archive"
    BOTH = "both"
    CHECK = "check"  # write nothing: compare the recomputation with the live topic (backfill.replay_check)


class BackfillSettings(BaseSettings):
    """How backfills run (environment prefix ``TICKFLOW_BACKFILL_``); the request says what to run."""

    model_config = SettingsConfigDict(env_prefix="TICKFLOW_BACKFILL_", extra="ignore", frozen=True)

    input_topic: str = EVENTS.name
    output_subject_topic: str = Field(
        default=ENRICHED.name,
        description="md:history cells are framed with EnrichedEvent's id under <this topic>-value, as the sink's are.",
    )
    late_s: float = Field(
        default=300.0,
        ge=0,
        description="How long after its event time an event may reach Kafka and still be in the backfill: the read "
        "ends at the first record with a Kafka timestamp at or after end + late_s.",
    )
    chunk_events: int = Field(default=200_000, ge=1, description="Records per chunk (a chunk is one Spark job).")
    live_topic: str = Field(default=ENRICHED.name, description="What target=check compares the recomputation with.")
    publish_delay_s: float = Field(
        default=600.0,
        ge=0,
        description="target=check reads the live topic up to end + late_s + this: how long after its input reached "
        "Kafka the stream may have published a record.",
    )


def parse_time(value: str | datetime, name: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidBackfill(
                f"The backfill's {name} {text!r} is not a time: give ISO 8601, e.g. 2026-11-27T09:30:00Z."
            ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_instruments(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Instrument ids, sorted and unique; None means all. Accepts a list, or one string of ids separated by
    commas, spaces or new lines (what a text field gives); empty, ``all`` or ``*`` mean all."""
    if value is None:
        return None
    items = value.replace(",", " ").split() if isinstance(value, str) else [str(v).strip() for v in value]
    ids = [i for i in items if i]
    if not ids or (len(ids) == 1 and ids[0].lower() in ALL):
        return None
    for instrument_id in ids:
        if instrument_id.lower() in ALL:
            raise InvalidBackfill(f"{instrument_id!r} among instrument ids: give either ids or 'all', not both.")
        if "\x00" in instrument_id:
            raise InvalidBackfill(f"The instrument id {instrument_id!r} contains NUL: give ids like XNAS:AAPL.")
    return tuple(sorted(set(ids)))


@dataclass(frozen=True)
class BackfillRequest:
    start: datetime  # inclusive, aware UTC
    end: datetime  # exclusive, aware UTC
    instruments: tuple[str, ...] | None  # None: every instrument
    target: Target

    @classmethod
    def parse(
        cls,
        start: str | datetime,
        end: str | datetime,
        instruments: str | Iterable[str] | None = None,
        target: str = Target.BOTH.value,
        now: datetime | None = None,
    ) -> BackfillRequest:
        """Validate parameters as a person gives them (the trigger form, the command line)."""
        begin, finish = parse_time(start, "start"), parse_time(end, "end")
        if finish <= begin:
            raise InvalidBackfill(
                f"The backfill's end {finish.isoformat()} is not after its start {begin.isoformat()}: "
                "give an end later than the start."
            )
        now = now or datetime.now(UTC)
        if begin >= now:
            raise InvalidBackfill(f"The backfill starts in the future ({begin.isoformat()}): there is nothing to read.")
        try:
            chosen = Target(str(target).strip().lower())
        except ValueError:
            raise InvalidBackfill(
                f"The backfill target {target!r} is not one of {', '.join(t.value for t in Target)}."
            ) from None
        return cls(begin, finish, parse_instruments(instruments), chosen)

    @property
    def writes_hbase(self) -> bool:
        return self.target in (Target.HBASE, Target.BOTH)

    @property
    def writes_archive(self) -> bool:
        return self.target in (Target.ARCHIVE, Target.BOTH)

    def describe(self) -> str:
        which = ", ".join(self.instruments) if self.instruments else "all instruments"
        return f"{self.start.isoformat()} to {self.end.isoformat()}, {which}, target {self.target.value}"

    def args(self) -> list[str]:
        """The command-line arguments that give this request back (``spark_apps/backfill.py``, the CLI)."""
        ids = [arg for i in self.instruments or () for arg in ("--instrument", i)]
        return ["--start", self.start.isoformat(), "--end", self.end.isoformat(), *ids, "--target", self.target.value]

    def to_json(self) -> str:
        """The request for another process (``spark_apps/backfill.py`` reads it from TICKFLOW_BACKFILL_REQUEST)."""
        return json.dumps(
            {
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "instruments": self.instruments,
                "target": self.target.value,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> BackfillRequest:
        data = json.loads(text)
        return cls(parse_time(data["start"], "start"), parse_time(data["end"], "end"),
                   parse_instruments(data["instruments"]), Target(data["target"]))  # fmt: skip

    def affected_dates(self) -> list[date]:
        """The UTC dates of ``md.enriched_archive`` partitions the range touches (the end is exclusive)."""
        last = (self.end - timedelta(microseconds=1)).date()
        days = (last - self.start.date()).days
        return [self.start.date() + timedelta(days=d) for d in range(days + 1)]

    def replaces(self, instrument_id: str, event_time: datetime) -> bool:
        """The archive merge rule: a row is replaced by this backfill when its instrument is backfilled and its
        event time is in the range; every other row of the affected partitions is kept as it is.
        (``job.archive_replaced`` is the same rule as a Spark column.)"""
        moment = parse_time(event_time, "event time")
        selected = self.instruments is None or instrument_id in self.instruments
        return selected and self.start <= moment < self.end
