"""Task bodies, one module per DAG (``dags/<dag_id>.py`` wires ``bp_tasks/<dag_id>.py``).

A task module turns params and XCom into calls: domain decisions from ``include/``,
AWS and data calls through the adapters in ``bp_aws`` and ``bp_data``. Imports that
cost time (pandas, boto3, the provider's hooks) stay inside the task functions, so the
dag-processor parses a DAG file without paying for them.
"""
