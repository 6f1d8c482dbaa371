"""Slowly changing dimension, type 2: keep every version of an instrument's attributes.

``merge`` takes the history as of the previous load and the source's current rows and
returns the new history: unchanged rows untouched, a changed instrument's current row
closed (``valid_to`` = load time) and a new current row opened, an instrument gone
from the source closed, a new instrument opened. Pure: no I/O, no Spark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

KEY = "instrument_id"
ATTRIBUTES = [
    "symbol",
    "isin",
    "name",
    "exchange",
    "currency",
    "asset_class",
    "sector",
    "tick_size",
    "lot_size",
    "listed",
]
HISTORY_COLUMNS = [KEY, *ATTRIBUTES, "source_updated_at", "valid_from", "valid_to", "is_current", "row_version"]


@dataclass(frozen=True)
class MergeResult:
    history: pd.DataFrame
    opened: int
    closed: int


def empty_history() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in HISTORY_COLUMNS})


def _changed(previous: pd.DataFrame, incoming: pd.DataFrame) -> pd.Series:
    """Per key: does any attribute differ? (NaN equals NaN; floats compare exactly.)"""
    left = previous.set_index(KEY)[ATTRIBUTES]
    right = incoming.set_index(KEY).loc[left.index, ATTRIBUTES]
    differs = (left != right) & ~(left.isna() & right.isna())
    return differs.any(axis=1)


def merge(history: pd.DataFrame, incoming: pd.DataFrame, load_time: datetime, load_version: int) -> MergeResult:
    history = history if len(history) else empty_history()
    current = history[history["is_current"].astype(bool)] if len(history) else history
    closed_before = history[~history["is_current"].astype(bool)] if len(history) else history

    incoming = incoming.drop_duplicates(KEY)
    known = current[KEY].isin(incoming[KEY])
    kept_keys = current.loc[known, KEY]
    changed_mask = _changed(current[known], incoming[incoming[KEY].isin(kept_keys)]) if known.any() else None
    changed_keys = set(changed_mask[changed_mask].index) if changed_mask is not None else set()
    gone = current[~known]
    unchanged = current[known & ~current[KEY].isin(changed_keys)]
    to_close = pd.concat([current[current[KEY].isin(changed_keys)], gone])
    to_close = to_close.assign(valid_to=load_time, is_current=False)

    new_keys = set(incoming[KEY]) - set(current[KEY])
    opened_rows = incoming[incoming[KEY].isin(changed_keys | new_keys)]
    opened = opened_rows.assign(
        source_updated_at=opened_rows.get("updated_at"),
        valid_from=load_time,
        valid_to=pd.NaT,
        is_current=True,
        row_version=load_version,
    )[HISTORY_COLUMNS]
    # object dtype: an all-NaT column (valid_to of new rows) must not decide the column's type.
    frames = [f.astype(object) for f in (closed_before, to_close, unchanged, opened) if len(f)]
    merged = pd.concat(frames, ignore_index=True)[HISTORY_COLUMNS] if frames else empty_history()
    merged = merged.sort_values([KEY, "valid_from"], kind="stable").reset_index(drop=True)
    return MergeResult(merged, opened=len(opened), closed=len(to_close))


def as_of(history: pd.DataFrame, when: datetime) -> pd.DataFrame:
    """The attributes valid at ``when``: valid_from <= when < valid_to (open-ended while current)."""
    valid_to = history["valid_to"]
    mask = (history["valid_from"] <= when) & (valid_to.isna() | (when < valid_to))
    return history[mask]
