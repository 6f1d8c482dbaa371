"""Spark reads Kafka through the spark-sql-kafka connector, batch and streaming."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from pyspark.sql import functions as F

from tests.support.kafka import as_admin
from tickflow.kafka_auth import Principal
from tickflow.settings import Settings
from tickflow.spark import kafka_reader
from tickflow.stream.settings import SPARK_APP_NAME

pytestmark = pytest.mark.integration


def _reader(settings: Settings, spark, topic: str, streaming: bool):  # type: ignore[no-untyped-def]
    """As the stream reads: its principal, its group id prefix."""
    return kafka_reader(
        spark, settings, topic, principal=Principal.STREAM, group_id_prefix=SPARK_APP_NAME, streaming=streaming
    )


def _produce(settings: Settings, topic: str, count: int) -> None:
    producer = Producer(as_admin(settings))
    for i in range(count):
        producer.produce(topic, f"v{i}".encode(), key=f"k{i % 5}".encode())
    assert producer.flush(30) == 0


def test_batch_read_of_a_topic(stack: Settings, spark, tmp_topic: str) -> None:  # type: ignore[no-untyped-def]
    _produce(stack, tmp_topic, 50)
    frame = _reader(stack, spark, tmp_topic, streaming=False).load()
    values = sorted(row.value.decode() for row in frame.select("value").collect())
    assert values == sorted(f"v{i}" for i in range(50))
    # Same key, same partition: the producer's partitioner keeps an instrument on one partition.
    partitions_per_key = frame.groupBy("key").agg(F.countDistinct("partition")).collect()
    assert all(row[1] == 1 for row in partitions_per_key)


def test_streaming_query_reads_a_topic(stack: Settings, spark, tmp_topic: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _produce(stack, tmp_topic, 40)
    stream = _reader(stack, spark, tmp_topic, streaming=True).load().selectExpr("CAST(value AS STRING) AS value")
    table = f"stream_{tmp_topic.replace('.', '_')}"
    query = (
        stream.writeStream.format("memory")
        .queryName(table)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(120)
    assert query.exception() is None
    assert spark.table(table).count() == 40
