"""The pytest plugin of tests that need reference data: one load of the demo's universe per session.

Loading the universe into Hive takes a Spark job; the tests that read reference data share one load
instead of re-baselining each module with a new Spark application. A test that changes the security
master puts it back with ``reset_secmaster`` (the load it then makes, if any, keeps the same
instruments), so every test sees the same set of instrument ids. Registered in tests/conftest.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.stack import tickflow
from tickflow.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTRUMENTS = 500  # the demo's universe: instrument count and seed
UNIVERSE_SEED = 7


def reset_secmaster(settings: Settings) -> None:
    """The security master back to exactly the landed universe (whatever a test inserted or deleted)."""
    from tickflow.reference.sources import secmaster_connection, seed_secmaster

    with secmaster_connection(settings) as connection:
        connection.execute("DROP TABLE IF EXISTS instruments")
    seed_secmaster(settings)


@pytest.fixture(scope="session")
def reference_data(stack: Settings, spark: SparkSession) -> Settings:
    """Migrated warehouse, the demo's universe in the source systems and loaded into Hive.

    A deliberate re-baseline (``max_drop=1``): a developer's stack may hold another universe.
    """
    from tickflow.reference.refresh import refresh_all
    from tickflow.sources.landing import write_reference
    from tickflow.sources.universe import build_universe, fx_rates

    migrated = tickflow("hive", "migrate", check=False)
    assert migrated.returncode == 0, migrated.stderr
    write_reference(stack, build_universe(INSTRUMENTS, UNIVERSE_SEED), fx_rates(UNIVERSE_SEED))
    reset_secmaster(stack)
    refresh_all(spark, stack, max_drop=1.0)
    return stack
