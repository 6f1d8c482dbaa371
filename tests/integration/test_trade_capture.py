"""Trade capture against the stack's PostgreSQL: the objects Debezium needs, and booking at a rate."""

from __future__ import annotations

import pytest

from tests.support.stack import tickflow
from tickflow.settings import Settings
from tickflow.sources.trade_capture import PUBLICATION, SLOT, TABLE, BookingConfig, book, prepare, trades_connection

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres(postgres_stack: Settings) -> Settings:
    return postgres_stack


def test_prepare_creates_the_table_publication_and_slot_once(postgres: Settings) -> None:
    prepare(postgres)
    again = prepare(postgres)
    assert not again.publication_created and not again.slot_created
    with trades_connection(postgres) as connection:
        assert connection.execute("SHOW wal_level").fetchone() == ("logical",)
        identity = connection.execute(f"SELECT relreplident FROM pg_class WHERE oid = '{TABLE}'::regclass").fetchone()
        assert identity == ("f",), "REPLICA IDENTITY FULL: updates and deletes carry the whole old row"
        published = connection.execute(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s", (PUBLICATION,)
        ).fetchall()
        assert published == [(TABLE,)]
        slot = connection.execute(
            "SELECT plugin, slot_type, database FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)
        ).fetchone()
        assert slot == ("pgoutput", "logical", "trades")


def test_booked_trades_are_rows_and_corrections_take_a_new_version_and_change_seq(postgres: Settings) -> None:
    stats = book(postgres, BookingConfig(rate=5_000, count=3_000, corrections=0.05, cancels=0.02, seed=23))
    assert stats.booked == 3_000 and stats.corrected > 0 and stats.cancelled > 0
    assert stats.transactions > 10, "paced in short transactions, not one"
    with trades_connection(postgres) as connection:
        run = connection.execute(f"SELECT split_part(trade_id, '-', 2) FROM {TABLE} ORDER BY change_seq DESC LIMIT 1")
        rows = connection.execute(
            f"SELECT trade_id, version, change_seq, side, size, price FROM {TABLE} "
            "WHERE split_part(trade_id, '-', 2) = %s",
            run.fetchone(),
        ).fetchall()
    assert len(rows) == stats.booked - stats.cancelled
    assert {r[3] for r in rows} == {"buy", "sell"} and all(r[4] > 0 and r[5] > 0 for r in rows)
    by_sequence = {int(r[0].rsplit("-", 1)[1]): r for r in rows}
    corrected = [r for r in rows if r[1] > 1]
    assert 0 < len(corrected) <= stats.corrected
    for trade_id, _, change_seq, *_ in corrected:
        # A correction comes after its trade's transaction, so after the next trade was inserted (unless that
        # trade was itself corrected since).
        later = by_sequence.get(int(trade_id.rsplit("-", 1)[1]) + 1)
        assert later is None or later[1] > 1 or change_seq > later[2]


def test_the_book_command_prints_its_rate(postgres: Settings) -> None:
    result = tickflow("trades", "book", "--rate", "2000", "--count", "1000", "--seed", "29")
    assert "target 2,000/s" in result.stderr and "booked 1,000" in result.stderr
