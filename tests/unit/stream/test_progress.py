"""How far behind the stream is, read off a micro-batch's progress."""

from __future__ import annotations

import json

from tickflow.stream.progress import events_behind


def test_events_behind_sums_what_each_partition_had_beyond_the_batch() -> None:
    progress = {
        "sources": [
            {
                "endOffset": json.dumps({"md.events": {"0": 100, "1": 50}}),
                "latestOffset": {"md.events": {"0": 160, "1": 50}},
            }
        ]
    }
    assert events_behind(progress) == 60


def test_a_partition_without_an_end_offset_is_not_counted_and_no_source_says_nothing() -> None:
    progress = {"sources": [{"endOffset": {"md.events": {"0": 10}}, "latestOffset": {"md.events": {"0": 10, "1": 7}}}]}
    assert events_behind(progress) == 0  # Spark gives every partition an end offset; one without is not counted
    assert events_behind({"sources": []}) is None
