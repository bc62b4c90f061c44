"""Domain logic of the operations pipeline: plain Python, importable without Airflow."""
