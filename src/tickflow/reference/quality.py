"""Quality gates a reference load must pass before it replaces the current data.

Pure functions over pandas frames (reference data is small: one row per instrument),
so each gate is tested on its own. A load that fails any gate is rejected whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tickflow.errors import TickflowError

ISO_CURRENCIES = frozenset(
    "USD EUR GBP CHF JPY HKD CAD AUD NZD SEK NOK DKK SGD CNY INR KRW BRL MXN ZAR PLN CZK HUF ILS TWD".split()
)


class QualityGateFailed(TickflowError):
    """A reference load broke a quality gate; the previous data stays in place."""


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    detail: str


def unique_non_null_key(frame: pd.DataFrame, key: str) -> GateResult:
    nulls = int(frame[key].isna().sum() + (frame[key].astype(str).str.strip() == "").sum())
    duplicated = frame[key][frame[key].duplicated(keep=False)].dropna().unique().tolist()
    problems = []
    if nulls:
        problems.append(f"{nulls} rows without {key}")
    if duplicated:
        problems.append(f"{len(duplicated)} duplicated {key} values (e.g. {', '.join(map(str, duplicated[:3]))})")
    return GateResult(f"unique non-null {key}", not problems, "; ".join(problems) or "ok")


def positive(frame: pd.DataFrame, columns: list[str], key: str) -> GateResult:
    bad = frame[(frame[columns].isna() | (frame[columns] <= 0)).any(axis=1)]
    detail = f"{len(bad)} rows with non-positive {'/'.join(columns)} (e.g. {', '.join(bad[key].astype(str)[:3])})"
    return GateResult(f"positive {'/'.join(columns)}", bad.empty, "ok" if bad.empty else detail)


def known_currencies(frame: pd.DataFrame, known: set[str], key: str) -> GateResult:
    unknown = frame[~frame["currency"].isin(known)]
    codes = sorted(unknown["currency"].astype(str).unique())
    detail = f"{len(unknown)} rows in currencies without an FX rate or ISO code: {', '.join(codes[:5])}"
    return GateResult("known currencies", unknown.empty, "ok" if unknown.empty else detail)


def no_collapse(rows_now: int, rows_before: int | None, max_drop: float) -> GateResult:
    """The load must not shrink by more than ``max_drop`` against the previous good load."""
    if not rows_before:
        return GateResult("row count", rows_now > 0, "ok" if rows_now else "the source returned no rows")
    drop = 1 - rows_now / rows_before
    passed = drop <= max_drop
    detail = f"{rows_now} rows against {rows_before} last time ({drop:.0%} fewer; the limit is {max_drop:.0%})"
    return GateResult("row count", passed, "ok" if passed else detail)


def enforce(dataset: str, results: list[GateResult]) -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        reasons = "; ".join(f"{r.gate}: {r.detail}" for r in failed)
        raise QualityGateFailed(f"The {dataset} load was rejected and the current data kept ({reasons}).")


def check_instruments(
    frame: pd.DataFrame, fx_currencies: set[str], rows_before: int | None, max_drop: float
) -> list[GateResult]:
    listed = frame[frame["listed"].fillna(True).astype(bool)]
    return [
        unique_non_null_key(frame, "instrument_id"),
        positive(frame, ["tick_size", "lot_size"], "instrument_id"),
        known_currencies(frame, fx_currencies & ISO_CURRENCIES, "instrument_id"),
        no_collapse(len(listed), rows_before, max_drop),
    ]


def check_fx(frame: pd.DataFrame, rows_before: int | None, max_drop: float) -> list[GateResult]:
    return [
        unique_non_null_key(frame, "currency"),
        positive(frame, ["usd_per_unit"], "currency"),
        known_currencies(frame, set(ISO_CURRENCIES), "currency"),
        no_collapse(len(frame), rows_before, max_drop),
    ]
