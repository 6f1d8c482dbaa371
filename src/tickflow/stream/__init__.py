"""The streaming enrichment app: decode, validate, forward-fill, enrich, publish."""
