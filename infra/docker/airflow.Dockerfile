# The Airflow image of the compose stack: the official image of the same Airflow
# version, plus exactly the project's runtime requirements (tests/test_compose.py checks
# that both stay in step with requirements.txt; tests/test_runtime_requirements.py that
# they import every DAG and no development tool).
FROM apache/airflow:3.3.2-python3.11 AS airflow

# Pango and a font for WeasyPrint, which renders the weekly review pack's PDF; MariaDB's
# client library and headers, which mysqlclient (the ledger's driver) builds against
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
       libmariadb-dev pkg-config build-essential \
    && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

ENV PYTHONPATH=/opt/airflow:/opt/airflow/plugins
# plugins/.airflowignore reads the same either way; glob syntax logs a pathspec
# deprecation warning into every task log
ENV AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX=regexp
# the task SDK scans Airflow's own example plugins with glob syntax whatever the setting:
# pathspec's deprecation warning would open every task log
ENV PYTHONWARNINGS=ignore:GitWildMatchPattern:DeprecationWarning

# The AWS emulator of `docker compose --profile local` only: the development
# requirements on top (moto and the test doubles); never what a deployment runs.
FROM airflow AS emulator
COPY --chown=airflow:0 requirements-dev.txt /opt/airflow/requirements-dev.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements-dev.txt
