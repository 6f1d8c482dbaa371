"""HBase as tickflow uses it: the tables' layout and cell bytes (``layout``), reads and writes (``store``).

The layout is a contract shared with the Kafka Connect sink (Java, ``connectors/``), which writes
exactly these rows, families, qualifiers, cell timestamps and bytes.
"""
