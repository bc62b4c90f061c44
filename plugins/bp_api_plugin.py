"""The platform's Airflow plugin: what it adds to the api-server.

Airflow imports every ``.py`` file of the plugins folder looking for plugins; the
``.airflowignore`` beside this file keeps that scan to this one file (the packages here are
imported by name, as the DAGs import them)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from bp_api.param_refusals import OneLineParamRefusals


class BpPlatformPlugin(AirflowPlugin):
    name = "bp_platform"
    fastapi_root_middlewares = [
        {"middleware": OneLineParamRefusals, "args": [], "kwargs": {}, "name": "One-line param refusals"},
    ]
