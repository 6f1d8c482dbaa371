"""Backfills: reprocess md.events over a time range with the stream's own transform, enriched as of event time.

``request`` validates what a person asked for (no Spark, no services), ``plan`` turns the range into
Kafka offsets (offsets-for-times) and chunks, ``job`` runs the chunks through
``tickflow.stream.transform.Transform`` and writes the targets. The ``backfill`` DAG, the
``tickflow backfill`` command and ``spark_apps/backfill.py`` all end in ``job.run_backfill``.
"""
