"""spark-submit entry point: refresh the Hive reference tables from the source systems.

    spark-submit $(python -c 'from tickflow.spark import submit_args; ...') spark_apps/reference_refresh.py

Exit code 0 when every dataset loaded, 1 when a quality gate rejected a load (the reason is the
last line of the output, and the previous data stays current).
"""

from __future__ import annotations

import sys


def main() -> int:
    from pyspark.sql import SparkSession

    from tickflow.errors import TickflowError
    from tickflow.reference.refresh import refresh_all
    from tickflow.settings import Settings

    settings = Settings()
    spark = SparkSession.builder.enableHiveSupport().getOrCreate()
    try:
        for report in refresh_all(spark, settings):
            print(
                f"{report.dataset}: load {report.load_version}, {report.rows_in} rows in, {report.rows_current} "
                f"current, {report.opened} opened, {report.closed} closed, {report.seconds:.1f}s",
                flush=True,
            )
    except TickflowError as error:
        print(f"reference refresh failed: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
