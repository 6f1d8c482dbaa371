"""spark-submit entry point: one backfill (``tickflow.backfill.job.run_backfill``).

The request comes as JSON in TICKFLOW_BACKFILL_REQUEST (the Airflow operator and tests write it with
``BackfillRequest.to_json``), settings from TICKFLOW_* and TICKFLOW_BACKFILL_*. Progress lines go to
stdout, which spark-submit's caller logs. The outcome is written as JSON to the file named by
TICKFLOW_BACKFILL_RESULT, when set, so the operator can fail with the sentence and tell a bad request
(no retry) from a failure (retry). Exit code 0 when done, 2 for a request the data refuses, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    from pyspark.sql import SparkSession

    from tickflow.backfill.job import run_backfill
    from tickflow.backfill.request import REQUEST_ENV, RESULT_ENV, BackfillRequest, BackfillSettings, InvalidBackfill
    from tickflow.errors import TickflowError
    from tickflow.settings import Settings

    result_file = os.environ.get(RESULT_ENV)

    def finish(code: int, outcome: dict[str, object]) -> int:
        if result_file:
            Path(result_file).write_text(json.dumps(outcome))
        return code

    def say(line: str) -> None:
        print(line, flush=True)

    request = BackfillRequest.from_json(os.environ[REQUEST_ENV])
    spark = SparkSession.builder.enableHiveSupport().getOrCreate()
    try:
        report = run_backfill(spark, Settings(), request, BackfillSettings(), say)
    except InvalidBackfill as error:
        print(f"backfill refused: {error}", file=sys.stderr, flush=True)
        return finish(2, {"status": "invalid", "message": str(error)})
    except TickflowError as error:
        print(f"backfill failed: {error}", file=sys.stderr, flush=True)
        return finish(1, {"status": "failed", "message": str(error)})
    finally:
        spark.stop()
    return finish(0, {"status": "done", "message": report.summary()})


if __name__ == "__main__":
    sys.exit(main())
