"""Airflow hooks, operators and sensors for tickflow's DAGs (laid out as a provider package).

They are thin: a hook turns Airflow Connections into tickflow objects, an operator templates
its arguments and calls one function of the tickflow package. Nothing here runs at import
time, and nothing outside this package imports Airflow.
"""
