"""Where the simulators leave reference data for the reference-data source systems.

The security master and the FX vendor feed are seeded from these files, so the
instruments the simulators trade are the ones the enrichment knows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tickflow.settings import Settings
from tickflow.sources.universe import Instrument


def landing_dir(settings: Settings) -> Path:
    return settings.root / "landing"


def write_reference(settings: Settings, universe: Sequence[Instrument], fx: dict[str, float]) -> list[Path]:
    """Write the universe (JSON lines) and the FX fixing (CSV); atomically, by rename."""
    now = datetime.now(UTC)
    base = landing_dir(settings)
    instruments = base / "security_master" / "instruments.jsonl"
    fx_file = base / "fx" / f"fx_rates_{now:%Y%m%dT%H%M%S}.csv"
    for path in (instruments, fx_file):
        path.parent.mkdir(parents=True, exist_ok=True)
    stamp = now.isoformat()
    _atomic_write(
        instruments, "".join(json.dumps({**i.as_record(), "updated_at": stamp}) + "\n" for i in universe)
    )
    rows = [["currency", "usd_per_unit", "as_of", "source"]] + [
        [ccy, f"{rate:.8f}", stamp, "simulator"] for ccy, rate in sorted(fx.items())
    ]
    _atomic_write(fx_file, "".join(",".join(row) + "\n" for row in rows))
    return [instruments, fx_file]


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text)
    partial.replace(path)
