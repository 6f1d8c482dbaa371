"""Location: the local side of what the stream's state directories need (the HDFS side runs in the cluster
profile's tests: `make test-cluster`)."""

from __future__ import annotations

from pathlib import Path

from tickflow.runtime.location import Location, scratch
from tickflow.settings import Settings


def test_a_local_path_and_its_file_uri_are_one_location(tmp_path: Path) -> None:
    here = Location.of(tmp_path / "a")
    assert here == Location.of((tmp_path / "a").as_uri()) == Location.of(str(tmp_path / "b" / ".." / "a"))
    assert here.as_uri() == (tmp_path / "a").as_uri() and str(here) == str(tmp_path / "a")
    assert (here / "x").parent == here and (here / "x").with_name("y") == here / "y" and here.name == "a"


def test_an_hdfs_uri_keeps_its_namenode_and_path() -> None:
    where = Location.of("hdfs://127.0.0.2:8020/tickflow/stream/checkpoint/")
    assert where.as_uri() == "hdfs://127.0.0.2:8020/tickflow/stream/checkpoint"
    assert (where / "fill-state").as_uri() == "hdfs://127.0.0.2:8020/tickflow/stream/checkpoint/fill-state"
    assert not where.is_local and str(where) == where.as_uri()


def test_files_are_written_whole_listed_renamed_and_removed(tmp_path: Path) -> None:
    root = Location.of(tmp_path / "root")
    assert not root.exists() and root.iterdir() == []
    (root / "p0" / "1.parquet").write_bytes(b"one")
    (root / "p0" / "1.parquet").write_bytes(b"two")  # replaced, no partial file left beside it
    (root / "restore.json").write_text("{}")
    assert sorted(root.names()) == ["p0", "restore.json"] and (root / "p0").names() == ["1.parquet"]
    assert (root / "p0" / "1.parquet").read_bytes() == b"two" and (root / "restore.json").read_text() == "{}"
    moved = root.with_name("root.old")
    root.rename(moved)
    assert not root.exists() and (moved / "p0" / "1.parquet").exists()
    moved.rmtree()
    assert not moved.exists()


def test_scratch_is_a_local_directory_gone_afterwards_outside_the_cluster_profile() -> None:
    with scratch(Settings(), "tickflow-test-") as directory:
        assert directory.is_local and directory.exists()
        (directory / "f").write_text("x")
    assert not directory.exists()
