"""tickflow: market data from source systems through Kafka, Spark and HBase to the people who read it."""

__version__ = "0.1.0"
