"""Source systems: market-data simulators and the reference data they trade."""
