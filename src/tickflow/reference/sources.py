"""The reference-data source systems, as users have them.

- **Security master**: a PostgreSQL database (``secmaster.instruments``), seeded from the
  simulators' universe and changed over time (listings, delistings, new tick sizes or sectors).
- **FX vendor feed**: CSV files dropped into ``<state>/landing/fx/`` (``fx_rates_<time>.csv``);
  the newest complete file is the current fixing.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tickflow.errors import TickflowError
from tickflow.runtime.postgres import connect
from tickflow.settings import Settings
from tickflow.sources.landing import fx_dir, universe_file, write_fx_file
from tickflow.sources.universe import SECTORS, tick_size_for

# Like many real security masters, rows are fed by several desks and instrument_id is not enforced
# unique here: the refresh's quality gate is what keeps duplicates out of Hive.
SECMASTER_DDL = """
CREATE TABLE IF NOT EXISTS instruments (
  row_id BIGSERIAL PRIMARY KEY,
  instrument_id TEXT,
  symbol TEXT NOT NULL,
  isin TEXT,
  name TEXT NOT NULL,
  exchange TEXT NOT NULL,
  currency TEXT NOT NULL,
  asset_class TEXT NOT NULL,
  sector TEXT NOT NULL,
  tick_size DOUBLE PRECISION NOT NULL,
  lot_size BIGINT NOT NULL,
  listed BOOLEAN NOT NULL DEFAULT TRUE,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS instruments_instrument_id ON instruments (instrument_id)
"""
COLUMNS = ["instrument_id", "symbol", "isin", "name", "exchange", "currency", "asset_class", "sector",
           "tick_size", "lot_size", "listed", "updated_at"]  # fmt: skip


def secmaster_connection(settings: Settings) -> Any:
    return connect(settings, "secmaster", "The security master")


def seed_secmaster(settings: Settings) -> int:
    """Load the simulators' universe into the security master (insert or update); returns rows."""
    path = universe_file(settings)
    if not path.exists():
        raise TickflowError(f"There is no universe at {path}: run `tickflow reference seed` or `tickflow simulate`.")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with secmaster_connection(settings) as connection, connection.transaction():
        for statement in SECMASTER_DDL.split(";"):
            connection.execute(statement)
        connection.execute(
            "DELETE FROM instruments WHERE instrument_id = ANY(%s)", ([r["instrument_id"] for r in rows],)
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO instruments ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})",
                [[row.get(c, True if c == "listed" else None) for c in COLUMNS] for row in rows],
            )
    return len(rows)


def read_secmaster(settings: Settings) -> pd.DataFrame:
    with secmaster_connection(settings) as connection:
        cursor = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM instruments ORDER BY instrument_id")
        frame = pd.DataFrame(cursor.fetchall(), columns=COLUMNS)
    frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
    return frame


@dataclass(frozen=True)
class Changes:
    listings: int = 0
    delistings: int = 0
    tick_changes: int = 0
    sector_changes: int = 0
    fx_move: float = 0.0


def apply_changes(settings: Settings, changes: Changes, seed: int = 1) -> dict[str, int]:
    """Change the source systems the way markets do, so a refresh has something to do."""
    rng = random.Random(seed)
    done = {"listings": 0, "delistings": 0, "tick_changes": 0, "sector_changes": 0}
    with secmaster_connection(settings) as connection:
        listed = [r[0] for r in connection.execute("SELECT instrument_id FROM instruments WHERE listed ORDER BY 1")]
        template = connection.execute(
            "SELECT exchange, currency, lot_size FROM instruments ORDER BY instrument_id LIMIT 1"
        ).fetchone()
        for _ in range(changes.listings):
            symbol = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
            price = rng.uniform(5, 500)
            connection.execute(
                "INSERT INTO instruments (instrument_id, symbol, isin, name, exchange, currency, asset_class, "
                "sector, tick_size, lot_size) VALUES (%s, %s, NULL, %s, %s, %s, 'equity', %s, %s, %s)",
                (
                    f"{template[0]}:{symbol}",
                    symbol,
                    f"{symbol.title()} New Listing",
                    template[0],
                    template[1],
                    rng.choice(SECTORS),
                    tick_size_for(price),
                    template[2],
                ),
            )
            done["listings"] += 1
        picks = rng.sample(listed, min(len(listed), changes.delistings + changes.tick_changes + changes.sector_changes))
        for instrument_id in picks[: changes.delistings]:
            connection.execute(
                "UPDATE instruments SET listed = FALSE, updated_at = now() WHERE instrument_id = %s", (instrument_id,)
            )
            done["delistings"] += 1
        rest = picks[changes.delistings :]
        for instrument_id in rest[: changes.tick_changes]:
            connection.execute(
                "UPDATE instruments SET tick_size = tick_size * 2, updated_at = now() WHERE instrument_id = %s",
                (instrument_id,),
            )
            done["tick_changes"] += 1
        for instrument_id in rest[changes.tick_changes : changes.tick_changes + changes.sector_changes]:
            connection.execute(
                "UPDATE instruments SET sector = %s, updated_at = now() WHERE instrument_id = %s",
                (rng.choice(SECTORS), instrument_id),
            )
            done["sector_changes"] += 1
    if changes.fx_move:
        current = read_fx_file(settings)
        moved = {
            row.currency: row.usd_per_unit * (1 if row.currency == "USD" else 1 + rng.uniform(-1, 1) * changes.fx_move)
            for row in current.itertuples()
        }
        write_fx_file(settings, moved)
    return done


def read_fx_file(settings: Settings) -> pd.DataFrame:
    """The newest complete FX file in the landing directory."""
    files = sorted(fx_dir(settings).glob("fx_rates_*.csv"))
    if not files:
        raise TickflowError(f"No FX file in {fx_dir(settings)}: run `tickflow reference seed` first.")
    frame = pd.read_csv(files[-1], dtype={"currency": str})
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    frame.attrs["file"] = str(files[-1])
    return frame
