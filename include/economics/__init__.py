"""Daily AI economics: cost per request from the price catalogue, rollups, margin,
anomalies and the data-quality gate. Plain Python over SQLAlchemy and pandas."""
