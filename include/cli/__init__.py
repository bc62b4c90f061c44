"""Command-line tools: the REST client CI systems use to trigger and follow DAG runs."""
