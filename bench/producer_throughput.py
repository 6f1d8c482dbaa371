"""How fast one simulator process feeds md.events on this machine.

Runs the three sources (default split 70/10/20) against the local stack's broker:
  1. unthrottled, several runs: the ceiling of one process (median and spread);
  2. at the 100k events/s target for a sustained period: does it hold the rate.
For each run it prints events/s, the producer's CPU (process user+sys time over wall
time, librdkafka's threads included) and bytes per event on the wire (librdkafka's
tx_bytes, i.e. compressed batches plus protocol overhead, divided by events).

    .venv/bin/python -m bench.producer_throughput [--runs 5] [--count 1000000] [--sustain 30]

Needs the stack (`tickflow stack up`); writes to a scratch topic it deletes afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

from bench.common import fresh_topics, register_value_schema
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sources.feed import FeedConfig, producer_config, run_feed
from tickflow.topics import EVENTS


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(settings: Settings, config: FeedConfig, schema_id: int) -> dict[str, float]:
    tx_bytes = [0]

    def on_stats(raw: str) -> None:
        tx_bytes[0] = json.loads(raw)["tx_bytes"]

    cpu0, wall0 = cpu_seconds(), time.monotonic()
    stats = run_feed(
        settings, config, schema_id, producer_overrides={"statistics.interval.ms": 500, "stats_cb": on_stats}
    )
    wall, cpu = time.monotonic() - wall0, cpu_seconds() - cpu0
    time.sleep(0.6)  # one more statistics callback after the final flush is not guaranteed; tx_bytes lags
    return {
        "events_per_s": stats.messages / wall,
        "cpu_cores": cpu / wall,
        "value_bytes_per_event": stats.bytes / stats.messages,
        "wire_bytes_per_event": tx_bytes[0] / stats.messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--sustain", type=float, default=30.0, help="seconds at the 100k/s target")
    args = parser.parse_args()

    settings = Settings()
    with fresh_topics(settings, "events", partitions=EVENTS.partitions) as topics:
        topic = topics["events"]
        schema_id = register_value_schema(settings, topic, load("tickflow.md.MarketEvent", settings.schemas_dir))
        config = {k: v for k, v in producer_config(settings).items() if k != "bootstrap.servers"}
        print(f"topic {topic} ({EVENTS.partitions} partitions), producer {config}")
        rows = []
        for run in range(args.runs):
            row = measure(settings, FeedConfig(rate=1e9, count=args.count, topic=topic), schema_id)
            rows.append(row)
            print(f"unthrottled run {run + 1}: " + "  ".join(f"{k} {v:,.2f}" for k, v in row.items()))
        rates = sorted(r["events_per_s"] for r in rows)
        print(
            f"unthrottled: median {statistics.median(rates):,.0f} events/s "
            f"(min {rates[0]:,.0f}, max {rates[-1]:,.0f}), median CPU "
            f"{statistics.median(r['cpu_cores'] for r in rows):.2f} cores, "
            f"{statistics.median(r['wire_bytes_per_event'] for r in rows):.1f} B/event on the wire "
            f"({statistics.median(r['value_bytes_per_event'] for r in rows):.1f} B Avro value)"
        )
        sustained = measure(settings, FeedConfig(rate=100_000, duration_s=args.sustain, topic=topic), schema_id)
        print(
            f"sustained at 100,000/s target for {args.sustain:.0f}s: "
            f"{sustained['events_per_s']:,.0f} events/s, CPU {sustained['cpu_cores']:.2f} cores, "
            f"{sustained['wire_bytes_per_event']:.1f} B/event on the wire"
        )


if __name__ == "__main__":
    main()
