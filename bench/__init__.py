"""tickflow's benchmarks: how fast each stage is on this machine, against its ceiling and a baseline.

Each module is a bench (or a contender that benches run: ``baselines``, ``python_fill``), run as a module from
the repository's root, so that ``bench`` is importable (its Spark workers import it too):

    .venv/bin/python -m bench.pipeline_bench --help

The whole path (``pipeline_bench``), the enrichment stream (``stream_bench``, ``stream_designs``,
``batch_steps``, ``stream_warmup``), the HBase sink (``hbase_sink_bench``), the trades source
(``trades_bench``), the simulator's producer (``producer_throughput``), the Avro encoder (``avro_encode``)
and the live page (``serving_bench``). Each module's docstring says what it measures, what it needs (most
need the local stack, `tickflow stack up`, not in secured mode) and what it leaves behind; the figures are in
docs/performance.md. What they share (per-run topics, Kafka clients, percentiles) is in ``bench.common``.
"""
