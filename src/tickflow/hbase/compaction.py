"""Major compaction of the ``md`` tables, waited for by watching their store files on disk.

**Requesting it.** The Thrift 1 server's ``majorCompact`` (what happybase's ``compact_table(name,
major=True)`` calls) runs a *minor* compaction in HBase 2.6.1: its handler calls ``Admin.compact``
(read in the hbase-thrift jar's bytecode; a minor compaction of two files does nothing). Thrift 2 and the
REST server have no compaction call at all. So a short-lived JVM on the stack's own HBase jars and
hbase-site.xml runs ``MajorCompaction.java`` (beside this module, started as a single-file source program:
nothing to build): ``Admin.flush`` then ``Admin.majorCompact`` per table. The flush puts the memstore,
delete markers included, into store files, so the compaction also drops the markers and the cells they
hide (which lets a reconciliation repair re-put deleted cells at their own timestamps). ~10 s of JVM
start, once a day.

**Knowing when it finished.** Nothing over Thrift says so, and the info ports (JMX over HTTP) are
disabled. But the standalone cluster's root dir is on the local file system
(``StatePaths.hbase_root``), and a store's committed files are the files in
``data/<namespace>/<table>/<region>/<family>/`` (a compaction writes into the region's ``.tmp`` and
moves the result in, then archives the inputs). A major compaction ends with one file per store (none
for an empty store), so "finished" is: every store has at most one file, and the listing stayed the same
for ``settle_s`` (a store that held one file before is rewritten too, and the new file replaces the old
one in a moment). Past ``timeout_s`` the wait gives up with one sentence.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tickflow.errors import TickflowError
from tickflow.hbase.jvm import hbase_home, hbase_java, hbase_log
from tickflow.retry import wait_for
from tickflow.runtime.paths import StatePaths
from tickflow.settings import Settings

log = logging.getLogger(__name__)

# (table, region, family) -> names of the store's committed files
Stores = dict[tuple[str, str, str], frozenset[str]]


class CompactionTimeout(TickflowError):
    """A major compaction did not end within its time limit."""


def md_tables(settings: Settings) -> tuple[str, ...]:
    """The tables of the ``md`` namespace (``tickflow hbase migrate``): ``md:latest`` and ``md:history``."""
    from tickflow.hbase.layout import table_specs

    return tuple(spec.name for spec in table_specs(settings))


def store_files(root: Path, table: str) -> Stores:
    """The committed store files of one table (``namespace:qualifier``) under an HBase root dir, per store."""
    namespace, _, qualifier = table.rpartition(":")
    table_dir = root / "data" / (namespace or "default") / qualifier
    stores: Stores = {}
    if not table_dir.is_dir():
        return stores
    for region in sorted(p for p in table_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for family in sorted(p for p in region.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if family.name == "recovered.edits":
                continue
            files = frozenset(f.name for f in family.iterdir() if f.is_file() and not f.name.startswith("."))
            stores[(table, region.name, family.name)] = files
    return stores


def compacted(stores: Stores) -> bool:
    """Whether every store holds at most one file, as a major compaction leaves it."""
    return all(len(files) <= 1 for files in stores.values())


def summary(stores: Stores) -> str:
    """One line per table: its stores and files, e.g. ``md:latest 3 files in 2 stores (f: 2, e: 1)``."""
    by_table: dict[str, list[tuple[str, int]]] = {}
    for (table, _, family), files in sorted(stores.items()):
        by_table.setdefault(table, []).append((family, len(files)))
    return "; ".join(
        f"{table} {sum(n for _, n in families)} files in {len(families)} stores "
        f"({', '.join(f'{family}: {n}' for family, n in families)})"
        for table, families in by_table.items()
    )


@dataclass(frozen=True)
class CompactionResult:
    tables: tuple[str, ...]
    before: Stores
    after: Stores
    seconds: float

    def line(self) -> str:
        count = sum(len(files) for files in self.before.values()), sum(len(files) for files in self.after.values())
        rewritten = sum(1 for key, files in self.after.items() if self.before.get(key) != files)
        return (
            f"major compaction of {', '.join(self.tables)} finished in {self.seconds:.0f}s: "
            f"{count[0]} store files before, {count[1]} after ({rewritten} of {len(self.after)} stores rewritten)"
        )


def wait_compacted(
    read: Callable[[], Stores],
    timeout_s: float,
    settle_s: float,
    poll_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Stores:
    """Poll ``read`` until every store has at most one file and nothing changed for ``settle_s``."""
    since, last, first = clock(), read(), True

    def settled() -> Stores | None:
        nonlocal since, last, first
        if not first:  # the first look is the one above
            current = read()
            if current != last:
                since, last = clock(), current
        first = False
        return last if compacted(last) and clock() - since >= settle_s else None

    def timed_out(_: Exception | None) -> Exception:
        crowded = {f"{table} {family}": len(files) for (table, _, family), files in last.items() if len(files) > 1}
        return CompactionTimeout(
            f"The major compaction did not finish within {timeout_s:.0f}s (stores still holding several files: "
            f"{crowded or 'none, but still changing'}): read the hbase log, or raise the timeout."
        )

    return wait_for(settled, timeout_s, interval_s=poll_s, timed_out=timed_out, clock=clock, sleep=sleep)


def compact(
    settings: Settings,
    tables: Sequence[str] | None = None,
    timeout_s: float = 1800.0,
    settle_s: float = 5.0,
    root: Path | None = None,
    request: Callable[[Sequence[str]], None] | None = None,
) -> CompactionResult:
    """Request a major compaction of each table (default: the md tables) and wait until all finished."""
    tables = tuple(tables or md_tables(settings))
    root = root or StatePaths(settings.root).hbase_root

    def read() -> Stores:
        found: Stores = {}
        for table in tables:
            found.update(store_files(root, table))
        return found

    started = time.monotonic()
    before = read()
    log.info("store files before: %s", summary(before) or "none")
    (request or _admin_request(settings))(tables)
    log.info("flush and major compaction of %s requested", ", ".join(tables))
    after = wait_compacted(read, timeout_s, settle_s)
    log.info("store files after: %s", summary(after) or "none")
    return CompactionResult(tables, before, after, time.monotonic() - started)


def _admin_request(settings: Settings) -> Callable[[Sequence[str]], None]:
    command = [*hbase_java(settings), str(Path(__file__).with_name("MajorCompaction.java"))]

    def request(tables: Sequence[str]) -> None:
        names = ", ".join(tables)
        try:
            done = subprocess.run(
                [*command, *tables], cwd=hbase_home(settings), capture_output=True, text=True, timeout=300, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise TickflowError(f"Requesting a major compaction of {names} took over 300s: is HBase up?") from error
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise TickflowError(
                f"Requesting a major compaction of {names} failed ({last}): read {hbase_log(settings)}."
            )

    return request
