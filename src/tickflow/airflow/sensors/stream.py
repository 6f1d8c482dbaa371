"""Wait until the enrichment stream is healthy (or stopped); fail at once when it is dead or stalled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator

from tickflow.airflow.hooks.stream import EnrichmentStreamHook

EXPECTATIONS = ("healthy", "stopped")


class EnrichmentStreamHealthSensor(BaseSensorOperator):
    """Pokes the stream's health and logs it as one line each time.

    :param expect: ``healthy`` (the default) or ``stopped``. Waiting for ``healthy``
        succeeds at the first healthy verdict, keeps waiting while the app is starting, is
        skipped when the stream was stopped on request, and fails the task when it is dead or
        stalled, because waiting will not heal those.
    """

    template_fields: Sequence[str] = ("expect",)

    def __init__(
        self,
        *,
        expect: str = "healthy",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 10)
        kwargs.setdefault("timeout", 600)
        kwargs.setdefault("mode", "poke")
        super().__init__(**kwargs)
        self.expect = expect

    def poke(self, context: Any) -> bool:
        from airflow.sdk.exceptions import AirflowException, AirflowSkipException

        from tickflow.stream.control import Verdict

        if self.expect not in EXPECTATIONS:  # templated, so known only now
            raise AirflowException(f"Unknown expect {self.expect!r}: choose {' or '.join(EXPECTATIONS)}.")
        health = EnrichmentStreamHook().health()
        if self.expect == "stopped":
            self.log.info("%s", health.line())
            return health.verdict in (Verdict.STOPPED, Verdict.DEAD)
        if health.verdict is Verdict.STOPPED:  # on request: the watchdog's run has nothing to watch
            raise AirflowSkipException(health.line())
        if health.verdict in (Verdict.DEAD, Verdict.STALLED):
            self.log.error("%s", health.line())
            raise AirflowException(health.line())
        self.log.info("%s", health.line())
        return health.ok
