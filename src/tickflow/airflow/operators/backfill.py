"""The backfill as a spark-submit of ``spark_apps/backfill.py``, with its parameters checked first.

What needs no Spark is checked before Spark starts: the parameters (``BackfillRequest.parse``) and whether
Kafka holds records in the range (offsets-for-times). Both fail the task with AirflowFailException, one
sentence, no retry: a retry cannot fix a parameter. The Spark application checks what needs the warehouse
(unknown instruments) and reports its outcome in a small JSON file, so a refused request fails the same
way and any other failure fails with its sentence and is retried.

The parameters come from the run's params (``start``, ``end``, ``instruments``, ``target``), read at
execute time rather than templated, so the instruments list stays a list.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from tickflow.settings import REPO_ROOT

APPLICATION = str(REPO_ROOT / "spark_apps" / "backfill.py")


class BackfillOperator(SparkSubmitOperator):
    """Validate the run's params, then run the backfill with spark-submit."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("application", APPLICATION)
        kwargs.setdefault("name", "tickflow-backfill")
        super().__init__(**kwargs)

    def execute(self, context: Any) -> None:
        from tickflow.backfill.plan import describe, has_data, partition_ranges
        from tickflow.backfill.request import (
            REQUEST_ENV,
            RESULT_ENV,
            BackfillRequest,
            BackfillSettings,
            InvalidBackfill,
        )
        from tickflow.settings import Settings
        from tickflow.spark import spark_conf

        params = context["params"]
        settings, options = Settings(), BackfillSettings()
        try:
            request = BackfillRequest.parse(
                params.get("start"), params.get("end"), params.get("instruments"), params.get("target") or "both"
            )
            ranges = partition_ranges(settings, options.input_topic, request, options.late_s)
            if not has_data(ranges):
                raise InvalidBackfill(
                    f"{options.input_topic} has no records between {request.start.isoformat()} and "
                    f"{request.end.isoformat()}: choose a range within the topic's retention."
                )
        except InvalidBackfill as error:
            self.log.error("backfill refused: %s", error)
            raise AirflowFailException(str(error)) from None
        self.log.info("backfill %s: %s", request.describe(), describe(ranges))

        conf = spark_conf(settings, self.name or "tickflow-backfill")
        conf.pop("spark.master")  # the connection's
        self.conf = {**conf, **(self.conf or {})}
        with tempfile.TemporaryDirectory(prefix="tickflow-backfill-result-") as folder:
            result = Path(folder) / "result.json"
            self.env_vars = {
                "SPARK_LOCAL_IP": settings.host,
                "PYSPARK_PYTHON": sys.executable,
                **(self.env_vars or {}),
                REQUEST_ENV: request.to_json(),
                RESULT_ENV: str(result),
            }
            try:
                super().execute(context)
            except AirflowException as failure:
                outcome = json.loads(result.read_text()) if result.exists() else {}
                if outcome.get("status") == "invalid":
                    self.log.error("backfill refused: %s", outcome["message"])
                    raise AirflowFailException(outcome["message"]) from failure
                message = outcome.get("message") or (
                    "The backfill's Spark application failed before it reported why: see its output above."
                )
                self.log.error("backfill failed: %s", message)
                raise AirflowException(message) from failure
            outcome = json.loads(result.read_text()) if result.exists() else {"message": "done"}
        self.log.info("backfill done: %s", outcome["message"])
