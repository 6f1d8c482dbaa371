"""Consumer-group lag from offsets and record ages: the arithmetic, no Kafka."""

from __future__ import annotations

import pytest

from tickflow.monitoring.lag import PartitionOffsets, Stage, TopicLag, record_age_s, topic_lags, watched_stages
from tickflow.sinks.hbase import HBaseSinkSettings
from tickflow.stream.settings import StreamSettings

SINK = Stage("connect-md-enriched-hbase-sink", "md.enriched", "hbase_sink")


@pytest.mark.parametrize(
    ("earliest", "stable", "committed", "lag"),
    [
        (0, 100, 90, 10),  # behind by what the group has not read up to the last stable offset
        (0, 100, 100, 0),
        (10, 30, None, 20),  # no commit: the group starts at the earliest
        (20, 25, 5, 5),  # retention deleted the committed offset: the group reads on from the earliest
        (0, 100, 120, 0),  # never below 0
    ],
)
def test_a_partitions_lag_runs_from_where_the_group_reads_next_to_the_last_stable_offset(
    earliest: int, stable: int, committed: int | None, lag: int
) -> None:
    assert PartitionOffsets("md.enriched", 0, earliest, stable, committed).lag == lag


def test_a_topics_lag_sums_its_partitions_and_its_age_is_the_oldest_records() -> None:
    partitions = [
        PartitionOffsets("md.enriched", 0, 0, 100, 90),
        PartitionOffsets("md.enriched", 1, 0, 50, 20),
        PartitionOffsets("md.enriched", 2, 0, 70, 70),
    ]
    ages = {("md.enriched", 0): 4.5, ("md.enriched", 1): 31.0}
    assert topic_lags(SINK, partitions, ages) == [TopicLag(SINK, "md.enriched", 40, 31.0)]


def test_a_caught_up_topic_is_0_seconds_behind_and_one_without_ages_has_none() -> None:
    caught_up = [PartitionOffsets("md.enriched", 0, 0, 100, 100)]
    assert topic_lags(SINK, caught_up, {}) == [TopicLag(SINK, "md.enriched", 0, 0.0)]
    behind = [PartitionOffsets("md.enriched", 0, 0, 100, 90)]
    assert topic_lags(SINK, behind, {}) == [TopicLag(SINK, "md.enriched", 10, None)]


def test_a_partition_with_only_transaction_markers_left_is_caught_up() -> None:
    """The last committed transaction's marker takes an offset the group never consumes: the reader found nothing
    to read there (age None), so it counts no record."""
    partitions = [PartitionOffsets("md.enriched", 0, 0, 101, 100), PartitionOffsets("md.enriched", 1, 0, 51, 40)]
    ages = {("md.enriched", 0): None, ("md.enriched", 1): 2.0}
    assert topic_lags(SINK, partitions, ages) == [TopicLag(SINK, "md.enriched", 11, 2.0)]
    assert topic_lags(SINK, partitions[:1], ages) == [TopicLag(SINK, "md.enriched", 0, 0.0)]


def test_a_record_from_a_clock_ahead_is_0_seconds_old() -> None:
    assert record_age_s(1000.0, 990_500) == 9.5
    assert record_age_s(1000.0, 1_000_200) == 0.0


def test_the_stages_are_the_streams_group_and_the_sinks_connect_group_on_md_topics_only() -> None:
    assert watched_stages(StreamSettings(), HBaseSinkSettings()) == [
        Stage("tickflow-enrichment", "md.events", "stream"),
        Stage("connect-md-enriched-hbase-sink", "md.enriched", "hbase_sink"),
    ]
    elsewhere = watched_stages(StreamSettings(input_topic="test.events"), HBaseSinkSettings(name="s", topic="md.x"))
    assert elsewhere == [Stage("connect-s", "md.x", "hbase_sink")]
