"""Store files of a table on the HBase root dir, and when a major compaction counts as finished."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickflow.hbase.compaction import CompactionTimeout, Stores, compacted, store_files, summary, wait_compacted


def test_store_files_are_the_files_of_each_family_dir(tmp_path: Path) -> None:
    region = tmp_path / "data" / "md" / "latest" / "r1"
    for family, files in {"f": ["a", "b"], "e": ["c"], "recovered.edits": ["1.seqid"], ".tmp": ["x"]}.items():
        (region / family).mkdir(parents=True)
        for name in files:
            (region / family / name).write_bytes(b"")
    (region / ".regioninfo").write_bytes(b"")
    stores = store_files(tmp_path, "md:latest")
    assert stores == {("md:latest", "r1", "e"): frozenset({"c"}), ("md:latest", "r1", "f"): frozenset({"a", "b"})}
    assert not compacted(stores)
    assert summary(stores) == "md:latest 3 files in 2 stores (e: 1, f: 2)"
    assert store_files(tmp_path, "md:absent") == {}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_finished_when_every_store_has_one_file_and_stays_so() -> None:
    key = ("md:latest", "r1", "f")
    listings: list[Stores] = [{key: frozenset({"a", "b"})}, {key: frozenset({"a", "b"})}, {key: frozenset({"c"})}]
    clock = Clock()
    reads = iter(listings + [listings[-1]] * 100)
    after = wait_compacted(lambda: next(reads), timeout_s=60, settle_s=3, clock=clock, sleep=clock.sleep)
    assert after == {key: frozenset({"c"})}
    assert clock.now == 5  # two polls to see one file, three more to see it stay


def test_a_compaction_that_never_ends_fails_with_the_crowded_stores() -> None:
    clock = Clock()
    crowded = {("md:history", "r1", "h"): frozenset({"a", "b"})}
    with pytest.raises(CompactionTimeout, match=r"within 10s .*md:history h': 2"):
        wait_compacted(lambda: crowded, timeout_s=10, settle_s=1, clock=clock, sleep=clock.sleep)
