"""Kafka Connect's connectors (the HBase sink, the trades source) as the watchdog sees them."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class ConnectorsHealthOperator(BaseOperator):
    """Log one line per deployed connector; fail when a connector or one of its tasks is FAILED, naming it
    and the first line of its trace. Connect restarts nothing by itself, so a failed source stops the flow
    of its events silently, while the stream itself stays healthy: this makes it a red task instead."""

    ui_color = "#e6f0fb"

    def execute(self, context: Any) -> list[str]:
        from airflow.sdk.exceptions import AirflowException

        from tickflow.settings import Settings
        from tickflow.sinks.connect import ConnectClient, ConnectError, failures

        settings = Settings()
        try:
            statuses = ConnectClient(settings.connect_urls, rebalance_wait_s=10).statuses()
        except ConnectError as error:
            self.log.error("%s", error)
            raise AirflowException(str(error)) from error
        for status in statuses:
            tasks = ", ".join(f"task {t.id} {t.state}" for t in status.tasks) or "no task"
            self.log.info("connector %s %s: %s", status.name, status.state, tasks)
        if not statuses:
            self.log.info("no connector deployed at %s", settings.connect_url)
        if failed := failures(statuses):
            message = (
                f"{len(failed)} part{'s' if len(failed) > 1 else ''} of Kafka Connect failed: {'; '.join(failed)}. "
                f"See `tickflow connect status` and the worker's log, fix the cause, then restart it: "
                f"curl -X POST '{settings.connect_url}/connectors/<name>/restart?includeTasks=true&onlyFailed=true'."
            )
            self.log.error("%s", message)
            raise AirflowException(message)
        return [status.name for status in statuses]
