"""Per-event cost of encoding MarketEvent: fastavro's schemaless_writer vs the compiled encoder.

    .venv/bin/python -m bench.avro_encode [--events 200000] [--repeats 5]

Both encode the same simulated events (all three sources) to identical bytes (checked);
prints the median µs per event of each and their ratio. No services needed.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import fastavro

from tickflow.avro_codec import compile_encoder
from tickflow.schemas import load
from tickflow.settings import Settings
from tickflow.sources.feed import FeedConfig, event_slices


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    schema = load("tickflow.md.MarketEvent", Settings().schemas_dir)
    events = []
    for slices in event_slices(FeedConfig(), 1_795_793_405_000_000):
        events.extend(e for _, batch in slices for e in batch)
        if len(events) >= args.events:
            break
    compiled = compile_encoder(schema.definition, ("instrument_id",))

    def with_fastavro(event: dict[str, object]) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema.parsed, event)
        return out.getvalue()

    assert all(compiled(e) == with_fastavro(e) for e in events[:20_000]), "encoders disagree"
    results = {}
    for name, encode in (("fastavro.schemaless_writer", with_fastavro), ("compiled encoder", compiled)):
        timings = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for event in events:
                encode(event)
            timings.append((time.perf_counter() - start) / len(events) * 1e6)
        results[name] = statistics.median(timings)
        print(f"{name:28s} median {results[name]:.2f} µs/event over {args.repeats} x {len(events):,} events")
    ratio = results["fastavro.schemaless_writer"] / results["compiled encoder"]
    print(f"compiled encoder is {ratio:.1f}x faster")


if __name__ == "__main__":
    main()
