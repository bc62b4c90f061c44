# The Airflow image of the compose stack: the official image of the same Airflow
# version, plus exactly the project's pinned requirements (tests/test_compose.py checks
# that both stay in step with requirements.txt).
FROM apache/airflow:3.3.2-python3.11

# Pango and a font for WeasyPrint, which renders the weekly review pack's PDF
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

ENV PYTHONPATH=/opt/airflow:/opt/airflow/plugins
