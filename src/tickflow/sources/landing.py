"""Where the simulators leave reference data for the reference-data source systems.

The security master is seeded from the universe file and the FX vendor feed is a
directory of CSV drops, so the instruments the simulators trade are the ones the
enrichment knows. Files appear atomically (written under a temporary name, renamed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tickflow.settings import Settings
from tickflow.sources.universe import Instrument


def universe_file(settings: Settings) -> Path:
    return settings.landing_dir / "security_master" / "instruments.jsonl"


def fx_dir(settings: Settings) -> Path:
    return settings.landing_dir / "fx"


def write_universe(settings: Settings, universe: Sequence[Instrument]) -> Path:
    stamp = datetime.now(UTC).isoformat()
    lines = "".join(json.dumps({**i.as_record(), "updated_at": stamp}) + "\n" for i in universe)
    return _atomic_write(universe_file(settings), lines)


def write_fx_file(settings: Settings, rates: dict[str, float], source: str = "vendor") -> Path:
    """Drop an FX file the way the vendor does: ``fx_rates_<time>.csv``, newest wins."""
    now = datetime.now(UTC)
    lines = ["currency,usd_per_unit,as_of,source"]
    lines += [f"{ccy},{rate:.8f},{now.isoformat()},{source}" for ccy, rate in sorted(rates.items())]
    return _atomic_write(fx_dir(settings) / f"fx_rates_{now:%Y%m%dT%H%M%S%f}.csv", "\n".join(lines) + "\n")


def write_reference(settings: Settings, universe: Sequence[Instrument], fx: dict[str, float]) -> list[Path]:
    return [write_universe(settings, universe), write_fx_file(settings, fx, source="simulator")]


def _atomic_write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
    return path
