# The Airflow image of the compose stack: the official image of the same Airflow
# version, plus exactly the project's pinned requirements (tests/test_compose.py checks
# that both stay in step with requirements.txt).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

ENV PYTHONPATH=/opt/airflow:/opt/airflow/plugins
