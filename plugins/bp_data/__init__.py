"""Airflow adapters for the data side: SQL engines and InfluxDB from Airflow connections."""
