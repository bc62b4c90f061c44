"""The embedded local stack behind ``make demo``, ``make up`` and the end-to-end tests:
the AWS emulator (moto in server mode) and the real Airflow services, on loopback.

Nothing in ``dags/`` or ``plugins/`` imports this package.
"""
