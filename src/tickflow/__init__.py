"""tickflow: market data from source systems through Kafka and Spark, enriched with reference data in Hive,
forward-filled, stored in HBase by a Kafka Connect sink and served to a web page, with Airflow running and
watching it all (docs/architecture.md).
"""

__version__ = "0.1.0"
