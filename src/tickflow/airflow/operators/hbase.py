"""HBase maintenance: major compaction of the md tables, and reconciliation of md:latest (see
tickflow.hbase.compaction and tickflow.reconcile.run; this only templates and delegates)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


def as_bool(value: bool | str) -> bool:
    """A boolean param as it arrives: itself, or rendered by a template ("True"/"False")."""
    return value if isinstance(value, bool) else str(value).strip().lower() == "true"


class HBaseCompactionOperator(BaseOperator):
    """Flush and major-compact the md tables, wait until every store holds one file, log store files
    before and after. A compaction that does not finish in ``timeout_s`` fails without retry (a retry would
    request the same compaction HBase is still running). ``compact`` false (templated) skips it."""

    template_fields: Sequence[str] = ("compact",)
    ui_color = "#fbeee6"

    def __init__(self, *, compact: bool | str = True, timeout_s: float = 1800.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.compact = compact
        self.timeout_s = timeout_s

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from tickflow.hbase.compaction import CompactionTimeout, compact
        from tickflow.settings import Settings

        if not as_bool(self.compact):
            raise AirflowSkipException("compaction skipped: the run's param compact is false")
        try:
            result = compact(Settings(), timeout_s=self.timeout_s)
        except CompactionTimeout as error:
            raise AirflowFailException(str(error)) from error
        self.log.info(result.line())
        return {"tables": list(result.tables), "seconds": round(result.seconds, 1)}


class HBaseReconciliationOperator(BaseOperator):
    """Reconcile md:latest with the latest state snapshot and md.enriched, write the report row to
    ops.hbase_reconciliation, re-put what is missing or stale when ``repair`` is true; fail (without retry:
    the same data gives the same answer) when mismatches remain, saying how many in the last line."""

    template_fields: Sequence[str] = ("repair", "snapshot_id")
    ui_color = "#fbeee6"

    def __init__(self, *, repair: bool | str = False, snapshot_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repair = repair
        self.snapshot_id = snapshot_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from tickflow.reconcile.run import reconcile
        from tickflow.settings import Settings

        # reconcile logs the report's line
        report = reconcile(Settings(), repair=as_bool(self.repair), snapshot_id=self.snapshot_id or None)
        if failure := report.failure():
            self.log.error(failure)
            raise AirflowFailException(failure)
        return {"run_id": report.run_id, "checked": report.instruments_checked, "repaired": report.repaired}
