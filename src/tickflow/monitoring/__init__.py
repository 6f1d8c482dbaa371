"""Monitoring: what Prometheus scrapes from tickflow, and what tickflow reads back from Prometheus."""
