"""Hooks: Airflow Connections -> tickflow clients."""
