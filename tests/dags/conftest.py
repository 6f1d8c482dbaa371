"""DAG tests parse dags/ with Airflow in a throw-away AIRFLOW_HOME: no database, no services."""

from __future__ import annotations

import os
import tempfile

# Airflow reads its configuration when first imported, so this must happen before any test imports it.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tickflow-airflow-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
