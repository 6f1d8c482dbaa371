"""tickflow: market data from source systems through Kafka and Spark, enriched with reference data in Hive.

HBase, the Kafka Connect sink into it and the web page that serves instruments follow (docs/architecture.md).
"""

__version__ = "0.1.0"
