-- Airflow's metadata database beside the security master (the local stack's postgres bootstrap does the same).
CREATE DATABASE airflow OWNER tickflow;
