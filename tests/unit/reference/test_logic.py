"""SCD2 merge and quality gates, one small frame at a time."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from tickflow.reference import quality, scd2
from tickflow.warehouse import split_statements

T1, T2, T3 = datetime(2026, 11, 1), datetime(2026, 11, 2), datetime(2026, 11, 3)


def source(*rows: dict[str, object]) -> pd.DataFrame:
    base = {"symbol": "S", "isin": None, "name": "N", "exchange": "XNAS", "currency": "USD", "asset_class": "equity",
            "sector": "Technology", "tick_size": 0.01, "lot_size": 1, "listed": True, "updated_at": T1}  # fmt: skip
    return pd.DataFrame([{**base, **row} for row in rows])


def current(history: pd.DataFrame) -> pd.DataFrame:
    return history[history["is_current"].astype(bool)].set_index("instrument_id")


def test_first_load_opens_one_current_row_per_instrument() -> None:
    result = scd2.merge(scd2.empty_history(), source({"instrument_id": "A"}, {"instrument_id": "B"}), T1, 1)
    assert result.opened == 2 and result.closed == 0
    assert list(current(result.history).index) == ["A", "B"]
    assert result.history["valid_to"].isna().all()
    assert (result.history["row_version"] == 1).all()


def test_a_changed_attribute_closes_the_old_row_and_opens_a_new_one() -> None:
    first = scd2.merge(scd2.empty_history(), source({"instrument_id": "A"}, {"instrument_id": "B"}), T1, 1).history
    second = scd2.merge(first, source({"instrument_id": "A", "sector": "Energy"}, {"instrument_id": "B"}), T2, 2)
    assert second.opened == 1 and second.closed == 1
    rows_a = second.history[second.history["instrument_id"] == "A"].sort_values("valid_from")
    assert rows_a["sector"].tolist() == ["Technology", "Energy"]
    assert rows_a["is_current"].tolist() == [False, True]
    assert rows_a["valid_to"].iloc[0] == T2 and pd.isna(rows_a["valid_to"].iloc[1])
    assert rows_a["valid_from"].tolist() == [T1, T2]
    # B did not change: still its first row, untouched.
    rows_b = second.history[second.history["instrument_id"] == "B"]
    assert len(rows_b) == 1 and rows_b["row_version"].iloc[0] == 1


def test_unchanged_load_changes_nothing() -> None:
    first = scd2.merge(scd2.empty_history(), source({"instrument_id": "A"}), T1, 1).history
    again = scd2.merge(first, source({"instrument_id": "A"}), T2, 2)
    assert again.opened == 0 and again.closed == 0
    pd.testing.assert_frame_equal(again.history.reset_index(drop=True), first.reset_index(drop=True))


def test_gone_instrument_is_closed_and_a_new_one_opened() -> None:
    first = scd2.merge(scd2.empty_history(), source({"instrument_id": "A"}, {"instrument_id": "B"}), T1, 1).history
    second = scd2.merge(first, source({"instrument_id": "B"}, {"instrument_id": "C"}), T2, 2)
    assert list(current(second.history).index) == ["B", "C"]
    gone = second.history[second.history["instrument_id"] == "A"]
    assert gone["is_current"].tolist() == [False] and gone["valid_to"].tolist() == [T2]


def test_as_of_returns_the_attributes_valid_at_a_time() -> None:
    h1 = scd2.merge(scd2.empty_history(), source({"instrument_id": "A"}), T1, 1).history
    h2 = scd2.merge(h1, source({"instrument_id": "A", "tick_size": 0.05}), T2, 2).history
    h3 = scd2.merge(h2, source({"instrument_id": "A", "tick_size": 0.1}), T3, 3).history
    assert scd2.as_of(h3, datetime(2026, 11, 1, 12))["tick_size"].tolist() == [0.01]
    assert scd2.as_of(h3, T2)["tick_size"].tolist() == [0.05]  # valid_from inclusive, valid_to exclusive
    assert scd2.as_of(h3, datetime(2027, 1, 1))["tick_size"].tolist() == [0.1]
    assert scd2.as_of(h3, datetime(2026, 10, 1)).empty


def test_gates_pass_a_clean_load() -> None:
    frame = source({"instrument_id": "A"}, {"instrument_id": "B"})
    quality.enforce("instruments", quality.check_instruments(frame, {"USD"}, 2, 0.2))


@pytest.mark.parametrize(
    ("rows", "before", "message"),
    [
        ([{"instrument_id": "A"}, {"instrument_id": "A"}], None, "duplicated instrument_id"),
        ([{"instrument_id": None}], None, "rows without instrument_id"),
        ([{"instrument_id": "A", "tick_size": 0.0}], None, "non-positive tick_size/lot_size"),
        ([{"instrument_id": "A", "lot_size": -100}], None, "non-positive tick_size/lot_size"),
        ([{"instrument_id": "A", "currency": "XYZ"}], None, "currencies without an FX rate"),
        ([{"instrument_id": "A"}], 10, "1 rows against 10 last time"),
    ],
)
def test_each_gate_rejects_with_what_was_wrong(rows: list[dict[str, object]], before: int | None, message: str) -> None:
    with pytest.raises(quality.QualityGateFailed, match=message):
        quality.enforce("instruments", quality.check_instruments(source(*rows), {"USD", "XYZ"} - {"XYZ"}, before, 0.2))


def test_delisted_rows_do_not_count_towards_the_collapse_gate() -> None:
    frame = source(*[{"instrument_id": f"I{i}", "listed": i < 5} for i in range(10)])
    results = quality.check_instruments(frame, {"USD"}, 10, 0.2)
    assert [r.gate for r in results if not r.passed] == ["row count"]


def test_hql_files_split_into_statements() -> None:
    hql = "-- comment; not a statement\nCREATE TABLE a (x INT);\nCREATE VIEW b\nAS SELECT ';' AS s FROM a;\n"
    assert split_statements(hql) == ["CREATE TABLE a (x INT)", "CREATE VIEW b\nAS SELECT ';' AS s FROM a"]
