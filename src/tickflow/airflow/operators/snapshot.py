"""Take a state snapshot of the enrichment stream (with retention), or restore the stream from one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from airflow.sdk import BaseOperator


def fail(operator: BaseOperator, message: str) -> NoReturn:
    """Fail the task without retry, with the sentence as the log's last line (Airflow puts the exception
    in a structured field a reader of the log may not see)."""
    from airflow.sdk.exceptions import AirflowFailException

    operator.log.error("%s", message)
    raise AirflowFailException(message)


class StateSnapshotOperator(BaseOperator):
    """Export the stream's committed forward-fill state to ``ops.state_snapshots`` and drop the snapshots
    retention does not keep (the newest ``keep_last``, and the newest of each of the last ``keep_days``
    days). A stream that never committed a micro-batch fails the task in one sentence."""

    template_fields: Sequence[str] = ("snapshot_id", "keep_last", "keep_days")
    ui_color = "#eef6e8"

    def __init__(self, *, snapshot_id: str = "", keep_last: Any = 24, keep_days: Any = 7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot_id = snapshot_id  # empty: the run's UTC time
        self.keep_last = keep_last
        self.keep_days = keep_days

    def execute(self, context: Any) -> dict[str, Any]:
        from tickflow.errors import TickflowError
        from tickflow.fill.snapshot import apply_retention, export_snapshot
        from tickflow.settings import Settings
        from tickflow.stream.settings import StreamSettings

        settings, stream = Settings(), StreamSettings()
        try:
            keep_last, keep_days = int(self.keep_last), int(self.keep_days)
            if keep_last < 1 or keep_days < 0:
                fail(self, "keep_last must be at least 1 and keep_days at least 0.")
            info = export_snapshot(settings, stream.checkpoint(settings), stream.input_topic, self.snapshot_id or None)
            self.log.info("%s", info.line())
            dropped = apply_retention(settings, keep_last, keep_days)
        except TickflowError as error:
            fail(self, str(error))
        self.log.info(
            "retention (newest %d, one a day for %d days): %s",
            keep_last,
            keep_days,
            f"dropped {len(dropped)}: {', '.join(dropped)}" if dropped else "nothing to drop",
        )
        return {"snapshot_id": info.snapshot_id, "batch_id": info.batch_id, "instruments": info.instruments}


class StateRestoreOperator(BaseOperator):
    """Restore the enrichment stream from a snapshot: stop it through its app control (never two copies),
    start it on a new checkpoint with the snapshot's registers, reading from the snapshot's offsets. The
    old checkpoint is kept aside. An unknown snapshot id fails the task in one sentence."""

    template_fields: Sequence[str] = ("snapshot_id",)
    ui_color = "#fbeee6"

    def __init__(self, *, snapshot_id: str, grace_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot_id = snapshot_id
        self.grace_s = grace_s

    def execute(self, context: Any) -> dict[str, Any]:
        from tickflow.airflow.hooks.stream import EnrichmentStreamHook
        from tickflow.errors import TickflowError

        if not self.snapshot_id:
            fail(self, "Give the snapshot_id to restore (see `tickflow snapshot list`).")
        stream = EnrichmentStreamHook().get_conn()
        try:
            result = stream.restore(self.snapshot_id, self.grace_s)
        except TickflowError as error:
            fail(self, str(error))
        self.log.info("%s; log %s", result.line(), stream.log_path)
        return {"snapshot_id": result.snapshot.snapshot_id, "pid": result.start.record.pid}
