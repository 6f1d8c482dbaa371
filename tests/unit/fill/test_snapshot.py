"""State snapshots without a warehouse: retention, the offsets a snapshot records, restore preparation."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tickflow.errors import TickflowError
from tickflow.fill.semantics import InstrumentState
from tickflow.fill.snapshot import (
    SnapshotInfo,
    batch_end_offsets,
    check_snapshot_id,
    committed,
    install_restore,
    restored_starting_offsets,
    snapshots_to_drop,
)
from tickflow.fill.state import FillState
from tickflow.runtime.location import Location

NOW = datetime(2026, 11, 30, 12, 30)


def hourly(days: int) -> list[tuple[str, datetime]]:
    """One snapshot an hour, up to NOW, over ``days`` days."""
    start = datetime(2026, 11, 30 - days + 1, 0, 0)
    hours = int((NOW - start).total_seconds() // 3600) + 1
    return [(f"s{h:04d}", datetime.fromtimestamp(start.timestamp() + 3600 * h)) for h in range(hours)]


def test_retention_keeps_the_newest_and_one_a_day_for_a_week() -> None:
    snapshots = hourly(days=10)
    dropped = set(snapshots_to_drop(snapshots, NOW, keep_last=24, keep_days=7))
    kept = [(sid, t) for sid, t in snapshots if sid not in dropped]
    newest_24 = sorted(snapshots, key=lambda s: s[1])[-24:]
    assert set(newest_24) <= set(kept)
    older = [t for sid, t in kept if (sid, t) not in newest_24]
    # one per day for the days before the newest 24 reach back, within the week, each the day's last (23:00)
    assert [t for t in older] == sorted(older)
    assert {t.date() for t in older} == {datetime(2026, 11, d).date() for d in range(24, 29)}
    assert all(t.hour == 23 for t in older)
    assert all(t.date() >= datetime(2026, 11, 24).date() for _, t in kept)


def test_retention_never_drops_below_keep_last_and_keeps_everything_when_few() -> None:
    snapshots = hourly(days=1)[:3]
    assert snapshots_to_drop(snapshots, NOW, keep_last=5, keep_days=0) == []
    assert snapshots_to_drop(snapshots, NOW, keep_last=1, keep_days=0) == ["s0001", "s0000"]


def test_snapshot_ids_are_checked_before_they_reach_sql() -> None:
    assert check_snapshot_id("20261130T120000") == "20261130T120000"
    with pytest.raises(TickflowError, match="not a usable snapshot id"):
        check_snapshot_id("x'; DROP TABLE ops.state_snapshots; --")


def write_checkpoint(checkpoint: Location, batches: dict[int, dict[str, int]], committed_up_to: int) -> None:
    for batch_id, offsets in batches.items():
        meta = json.dumps({"batchWatermarkMs": 0, "batchTimestampMs": 1, "conf": {}})
        (checkpoint / "offsets" / str(batch_id)).write_text(f"v1\n{meta}\n{json.dumps({'md.events': offsets})}")
        if batch_id <= committed_up_to:
            (checkpoint / "commits" / str(batch_id)).write_text("v1\n{}")


def registers(value: float, as_of: int, offset: int) -> InstrumentState:
    state = InstrumentState()
    state.values["last_price"], state.as_of["last_price"], state.offsets["last_price"] = value, as_of, offset
    return state


def test_committed_state_is_the_last_committed_batch_with_its_end_offsets(tmp_path: Path) -> None:
    checkpoint = Location.of(tmp_path / "checkpoint")
    write_checkpoint(checkpoint, {0: {"0": 5, "1": 3}, 1: {"0": 9, "1": 7}, 2: {"0": 12, "1": 7}}, committed_up_to=1)
    files = FillState(checkpoint / "fill-state")
    files.write(0, 0, {"A": registers(1.0, 10, 4)})
    files.write(0, 1, {"A": registers(2.0, 20, 8)})
    files.write(0, 2, {"A": registers(3.0, 30, 11)})  # planned and written, not committed yet
    files.write(1, 0, {"B": registers(5.0, 15, 2)})
    state = committed(checkpoint)
    assert state.batch_id == 1
    assert state.offsets == {"md.events": {0: 9, 1: 7}}
    assert state.states["A"].get("last_price") == (2.0, 20, 8)
    assert state.states["B"].get("last_price") == (5.0, 15, 2)
    assert batch_end_offsets(checkpoint, 2) == {"md.events": {0: 12, 1: 7}}


def test_a_checkpoint_without_a_committed_batch_says_run_the_stream_first(tmp_path: Path) -> None:
    with pytest.raises(TickflowError, match="run the stream first"):
        committed(Location.of(tmp_path / "checkpoint"))


def test_a_restore_moves_the_checkpoint_aside_and_seeds_a_new_one_at_the_snapshot_offsets(tmp_path: Path) -> None:
    checkpoint = Location.of(tmp_path / "stream" / "checkpoint")
    write_checkpoint(checkpoint, {0: {"0": 5}}, committed_up_to=0)
    snapshot = SnapshotInfo("s1", 0, "md.events", {0: 5, 1: 0}, 1, 1, NOW)
    moved = install_restore(checkpoint, snapshot, {"A": registers(1.0, 10, 4)}, now=NOW)
    assert moved is not None and (moved / "commits" / "0").exists()
    assert not (checkpoint / "commits").exists()
    assert FillState(checkpoint / "fill-state").current()["A"].get("last_price") == (1.0, 10, 4)
    assert json.loads(restored_starting_offsets(checkpoint, "md.events") or "") == {"md.events": {"0": 5, "1": 0}}
    with pytest.raises(TickflowError, match="restore a snapshot of the topic the stream reads"):
        restored_starting_offsets(checkpoint, "other.events")
    assert restored_starting_offsets(moved, "md.events") is None


def test_restores_keep_only_the_newest_old_checkpoints(tmp_path: Path) -> None:
    checkpoint = Location.of(tmp_path / "checkpoint")
    snapshot = SnapshotInfo("s1", 0, "md.events", {0: 5}, 0, 0, NOW)
    for minute in range(5):
        install_restore(checkpoint, snapshot, {}, now=NOW.replace(minute=minute))
    aside = sorted(p.name for p in tmp_path.glob("checkpoint.before-restore-*"))
    assert aside == [f"checkpoint.before-restore-20261130T12{m:02d}00" for m in (2, 3, 4)]
