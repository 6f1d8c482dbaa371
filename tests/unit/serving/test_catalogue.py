"""The instrument catalogue without Hive: fallback to md:latest, and the reload that finds Hive again."""

from __future__ import annotations

import logging

from tickflow.serving.catalogue import Catalogue
from tickflow.serving.model import Instrument

HIVE = [Instrument("XNAS:AAPL", "AAPL", "Apple Inc")]
SEEN = [Instrument("XNAS:AAPL", in_reference=False), Instrument("TEST:1", in_reference=False)]


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_hive_down_falls_back_to_md_latest_and_says_so() -> None:
    hive_up = False

    def hive() -> list[Instrument]:
        if not hive_up:
            raise ConnectionRefusedError("HiveServer2 at 127.0.0.1:10000 did not answer")
        return HIVE

    catalogue = Catalogue(hive, lambda: SEEN)
    recorded, logger = Recorded(), logging.getLogger("tickflow.serving.catalogue")
    logger.addHandler(recorded)
    try:
        catalogue.reload()
    finally:
        logger.removeHandler(recorded)
    assert catalogue.source == "md:latest"
    assert {i.instrument_id for i in catalogue.search("", 10)} == {"XNAS:AAPL", "TEST:1"}
    assert any("listing the instruments found in md:latest" in line for line in recorded.lines)
    hive_up = True
    catalogue.reload()
    assert catalogue.source == "ref.instruments + md:latest"
    assert catalogue.get("XNAS:AAPL") == HIVE[0]
    assert catalogue.get("TEST:1") is not None


def test_hbase_down_keeps_the_last_list() -> None:
    def broken() -> list[Instrument]:
        raise OSError("refused")

    catalogue = Catalogue(None, lambda: SEEN)
    catalogue.reload()
    catalogue._load_seen = broken
    catalogue.reload()
    assert len(catalogue) == 2


def test_start_lists_md_latest_at_once_and_reference_data_in_the_background() -> None:
    catalogue = Catalogue(lambda: HIVE, lambda: SEEN)
    catalogue.start(every_s=3600)
    try:
        assert catalogue.get("TEST:1") is not None
        assert catalogue._thread is not None
        for _ in range(200):
            if catalogue.source != "md:latest":
                break
            catalogue._stop.wait(0.01)
        assert catalogue.source == "ref.instruments + md:latest"
    finally:
        catalogue.stop()
