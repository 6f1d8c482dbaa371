"""One metastore for everyone: a table made through HiveServer2 is seen by other Spark applications."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest

from tests.support.stack import hive_query
from tickflow.settings import Settings

pytestmark = pytest.mark.integration


def test_table_from_thrift_server_is_visible_to_another_spark_app(stack: Settings, spark) -> None:  # type: ignore[no-untyped-def]
    table = f"tickflow_test.shared_{uuid.uuid4().hex[:8]}"
    hive_query(
        stack,
        "CREATE DATABASE IF NOT EXISTS tickflow_test",
        f"CREATE TABLE {table} (instrument_id STRING, tick DOUBLE) USING parquet",
        f"INSERT INTO {table} VALUES ('AAPL', 0.01), ('VOD', 0.05)",
    )
    # This test process is a Spark application of its own, separate from the thrift server.
    assert sorted(spark.table(table).collect()) == [("AAPL", 0.01), ("VOD", 0.05)]

    # And so is a fresh spark-submit-like process that only knows the settings.
    program = textwrap.dedent(
        f"""
        from tickflow.settings import Settings
        from tickflow.spark import spark_session
        spark = spark_session(Settings(), "tickflow-tests-reader")
        print("ROWS", spark.table("{table}").count())
        """
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert "ROWS 2" in result.stdout, result.stderr[-3000:]
