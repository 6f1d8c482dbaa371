"""The serving API and its web page: instruments by selection, read from HBase (``md:latest``, ``md:history``)."""
