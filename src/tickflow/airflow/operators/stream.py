"""Start, restart or stop the enrichment stream (never two copies; see tickflow.appctl)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from tickflow.airflow.hooks.stream import EnrichmentStreamHook

ACTIONS = ("ensure", "restart", "stop")


class EnrichmentStreamOperator(BaseOperator):
    """Apply ``action`` to the enrichment stream and log one line saying what happened.

    - ``ensure``: start it unless it runs and is healthy or starting; restart it when it is
      stalled. A *scheduled* ensure leaves alone a stream somebody stopped on purpose.
    - ``restart``: stop and start (from the same checkpoint, so nothing is lost or repeated).
    - ``stop``: stop it after its current micro-batch (SIGKILL after ``grace_s``).
    """

    template_fields: Sequence[str] = ("action",)
    ui_color = "#e8f4fa"

    def __init__(
        self,
        *,
        action: str = "ensure",
        grace_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.grace_s = grace_s  # None: the settings' app_stop_grace_s

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        from tickflow.stream.control import Verdict

        if self.action not in ACTIONS:
            raise AirflowException(f"Unknown action {self.action!r}: choose one of {', '.join(ACTIONS)}.")
        hook = EnrichmentStreamHook()
        stream = hook.get_conn()
        if self.action == "stop":
            stopped = stream.stop(self.grace_s)
            self.log.info(
                "enrichment stream STOPPED: %s", f"pid {stopped.pid} stopped" if stopped else "it was not running"
            )
            return {"action": "stop", "pid": stopped.pid if stopped else None}
        before = hook.health(stream)
        self.log.info("before %s: %s", self.action, before.line())
        run = context.get("dag_run")
        scheduled = getattr(run, "run_type", None) == "scheduled"
        if self.action == "ensure" and before.verdict is Verdict.STOPPED and scheduled:
            self.log.info("enrichment stream STOPPED on request: a scheduled run leaves it stopped; trigger ensure")
            return {"action": "ensure", "pid": None, "started": False}
        restart = self.action == "restart" or before.verdict is Verdict.STALLED
        result = stream.start(restart=restart, grace_s=self.grace_s)
        self.log.info(
            "enrichment stream %s: %s; log %s",
            "RESTARTED" if result.started and restart else "STARTED" if result.started else "RUNNING",
            result.reason,
            stream.log_path,
        )
        return {"action": self.action, "pid": result.record.pid, "started": result.started}
