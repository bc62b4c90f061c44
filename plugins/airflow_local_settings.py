"""Airflow's local settings for this project: every Airflow process imports this module at
start (Airflow puts the plugins folder on ``sys.path`` before it looks for it).

What it sets up is speed, never behaviour: botocore parses an AWS service's model (its JSON
description, 0.05-0.25 CPU-s each, EC2's the largest) once per session, and the amazon
provider opens a session for every hook, in every task process. Here all sessions of a
process share one data loader, whose cache keeps what it parsed; the processes that fork
task processes (the scheduler's LocalExecutor workers, a Celery worker's pool) parse the
models the tasks use before they fork, so a task finds them parsed. Measured on the local
stack: a two-task ``platform_preflight`` run costs 0.94 CPU-s instead of 1.6.

``plugins/.airflowignore`` keeps the plugin scan from importing this module a second time;
``tests/conftest.py`` shares the loader the same way in the test processes.
"""

from __future__ import annotations

import sys

#: Airflow reads every public name here as a cluster policy: this module declares none
__all__: list[str] = []

#: the services the project's hooks, triggers, notifiers and remote task logs call
_SERVICES = ("autoscaling", "ce", "cloudformation", "cloudwatch", "ec2", "kms", "s3", "sns", "ssm", "sts")
#: the Airflow commands whose processes call AWS (tasks, triggers, remote task logs)...
_CALLS_AWS = {"scheduler", "celery", "triggerer", "api-server"}
#: ...and those of them that fork the task processes
_FORKS_TASKS = {"scheduler", "celery"}


def share_botocore_data_loader() -> object | None:
    """Give every botocore session of this process one data loader (idempotent); return it,
    or None where botocore is not installed or no longer has the registration hook."""
    try:
        import botocore.session
        from botocore.loaders import create_loader
    except ImportError:
        return None
    session_class = botocore.session.Session
    if not hasattr(session_class, "_register_data_loader"):
        return None
    shared = getattr(session_class, "_bp_shared_data_loader", None)
    if shared is None:
        shared = create_loader()

        def register_shared_loader(session: botocore.session.Session) -> None:
            session._components.register_component("data_loader", shared)

        session_class._register_data_loader = register_shared_loader
        session_class._bp_shared_data_loader = shared
    return shared


def _parse_task_models() -> None:
    """Build a client of each service once: its model, endpoints and rules are parsed into
    the shared loader. Unsigned: no credentials are looked up, no request is sent."""
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    session, unsigned = botocore.session.get_session(), Config(signature_version=UNSIGNED)
    for service in _SERVICES:
        session.create_client(service, region_name="us-east-1", config=unsigned)


def _airflow_command() -> str:
    """``scheduler`` for ``airflow scheduler ...``; empty outside the ``airflow`` command."""
    if len(sys.argv) > 1 and sys.argv[0].rsplit("/", 1)[-1] == "airflow":
        return sys.argv[1]
    return ""


_COMMAND = _airflow_command()
if _COMMAND in _CALLS_AWS and share_botocore_data_loader() is not None and _COMMAND in _FORKS_TASKS:
    _parse_task_models()
