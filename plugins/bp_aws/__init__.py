"""Airflow adapters for the platform's AWS work, in the amazon provider's own style.

Airflow puts ``plugins/`` on ``sys.path``, so DAGs import this package as ``bp_aws``.
"""
