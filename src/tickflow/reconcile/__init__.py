"""Reconciliation of HBase against Kafka or a state snapshot.

``compare``: what HBase should hold and how a read differs from it (pure, unit-tested).
``run``: the I/O around it: read the expectation, scan HBase, repair, record the result in Hive.
"""
