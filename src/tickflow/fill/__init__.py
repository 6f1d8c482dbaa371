"""The forward fill that the stream, the backfill and the reconciliation share.

``semantics``: the contract, one instrument's per-field last-writer-wins registers (pure Python).
``state``: those registers, durable per Kafka partition and micro-batch in the checkpoint's state files.
``snapshot``: the state exported to Hive, listed, read back and restored.
No Spark and no HBase here.
"""
