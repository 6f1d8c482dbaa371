"""The instrument universe and FX rates the source simulators trade, built from a seed.

The same seed gives the same universe. It is also what the reference-data source
systems (security master, FX feed) are seeded with, so that every event's
instrument is known to the enrichment unless a test makes it otherwise.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

# (MIC, currency, well-known symbols to start from). Symbols beyond these are generated.
EXCHANGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "XNAS",
        "USD",
        (
            "AAPL",
            "MSFT",
            "NVDA",
            "AMZN",
            "GOOGL",
            "META",
            "TSLA",
            "AVGO",
            "COST",
            "NFLX",
            "ADBE",
            "PEP",
            "CSCO",
            "INTC",
            "AMD",
            "QCOM",
        ),
    ),
    (
        "XNYS",
        "USD",
        (
            "JPM",
            "V",
            "JNJ",
            "WMT",
            "PG",
            "XOM",
            "KO",
            "DIS",
            "BAC",
            "MRK",
            "CVX",
            "IBM",
            "GS",
            "MCD",
            "NKE",
            "CAT",
        ),
    ),
    (
        "XLON",
        "GBP",
        ("VOD", "HSBA", "BP", "SHEL", "AZN", "ULVR", "GSK", "RIO", "BARC", "LLOY", "TSCO", "BATS"),
    ),
    ("XETR", "EUR", ("SAP", "SIE", "ALV", "DTE", "BAS", "BMW", "MBG", "VOW3", "ADS", "DBK", "IFX", "MUV2")),
    ("XPAR", "EUR", ("MC", "OR", "TTE", "SAN", "AIR", "BNP", "SU", "AI", "KER", "DG")),
    ("XSWX", "CHF", ("NESN", "NOVN", "ROG", "UBSG", "ZURN", "ABBN")),
    ("XTKS", "JPY", ("7203", "6758", "9984", "8306", "6861", "9432", "7974", "8035")),
    ("XHKG", "HKD", ("0700", "0005", "0939", "1299", "0941", "3690", "9988")),
)
SECTORS = (
    "Technology", "Financials", "Health Care", "Consumer Discretionary", "Consumer Staples",
    "Energy", "Industrials", "Materials", "Utilities", "Communication Services", "Real Estate",
)  # fmt: skip
# Rough USD per unit, the FX walk's starting point.
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CHF": 1.12, "JPY": 0.0067, "HKD": 0.128}
# Typical price ranges per currency (prices of a share in that currency).
PRICE_RANGE = {"USD": (5.0, 900.0), "EUR": (5.0, 800.0), "GBP": (0.5, 80.0), "CHF": (20.0, 400.0),
               "JPY": (300.0, 40_000.0), "HKD": (5.0, 600.0)}  # fmt: skip
LOT_SIZE = {"XTKS": 100, "XHKG": 100}
NAME_SUFFIXES = ("Holdings", "Group", "Corp", "AG", "plc", "SA", "Inc")


@dataclass(frozen=True)
class Instrument:
    """One listed instrument with the attributes the security master holds."""

    instrument_id: str
    symbol: str
    isin: str
    name: str
    exchange: str
    currency: str
    asset_class: str
    sector: str
    tick_size: float
    lot_size: int
    initial_price: float

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("initial_price")
        return record


def tick_size_for(price: float) -> float:
    """A simplified price-banded tick table (as venues have, e.g. MiFID II tick regimes)."""
    for limit, tick in ((1.0, 0.0001), (10.0, 0.001), (100.0, 0.01), (1_000.0, 0.05), (10_000.0, 0.5)):
        if price < limit:
            return tick
    return 1.0


def _isin(country: str, rng: random.Random) -> str:
    body = country + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(9))
    digits = "".join(str(int(c, 36)) for c in body)
    # Luhn check digit over the digit expansion, as ISIN defines it.
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n // 10 + n % 10
    return body + str((10 - total % 10) % 10)


COUNTRY = {"XNAS": "US", "XNYS": "US", "XLON": "GB", "XETR": "DE", "XPAR": "FR", "XSWX": "CH",
           "XTKS": "JP", "XHKG": "HK"}  # fmt: skip


def build_universe(size: int = 500, seed: int = 7) -> list[Instrument]:
    """``size`` instruments spread over the exchanges; deterministic for a seed."""
    rng = random.Random(seed)
    instruments: list[Instrument] = []
    taken: set[str] = set()
    per_exchange = [list(symbols) for _, _, symbols in EXCHANGES]
    while len(instruments) < size:
        slot = len(instruments) % len(EXCHANGES)
        mic, currency, _ = EXCHANGES[slot]
        if per_exchange[slot]:
            symbol = per_exchange[slot].pop(0)
        elif mic in ("XTKS", "XHKG"):
            symbol = f"{rng.randrange(1000, 9999):04d}"
        else:
            symbol = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.choice((3, 4))))
        instrument_id = f"{mic}:{symbol}"
        if instrument_id in taken:
            continue
        taken.add(instrument_id)
        low, high = PRICE_RANGE[currency]
        price = round(low * (high / low) ** rng.random(), 2)
        tick = tick_size_for(price)
        instruments.append(
            Instrument(
                instrument_id=instrument_id,
                symbol=symbol,
                isin=_isin(COUNTRY[mic], rng),
                name=f"{symbol.title()} {rng.choice(NAME_SUFFIXES)}",
                exchange=mic,
                currency=currency,
                asset_class="etf" if rng.random() < 0.08 else "equity",
                sector=rng.choice(SECTORS),
                tick_size=tick,
                lot_size=LOT_SIZE.get(mic, 1),
                initial_price=round(round(price / tick) * tick, 6),
            )
        )
    return instruments


def fx_rates(seed: int = 7) -> dict[str, float]:
    """USD per unit of each trading currency, jittered by the seed."""
    rng = random.Random(seed)
    return {ccy: (rate if ccy == "USD" else round(rate * (1 + rng.uniform(-0.02, 0.02)), 6))
            for ccy, rate in USD_PER_UNIT.items()}  # fmt: skip
