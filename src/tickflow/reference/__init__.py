"""Reference data: the source systems (security master, FX feed) and their refresh into Hive."""
