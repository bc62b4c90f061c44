"""Airflow's local settings for this project: every Airflow process imports this module at
start (Airflow puts the plugins folder on ``sys.path`` before it looks for it).

What it sets up is speed, never behaviour. A task process is forked from the process that
runs it (the scheduler's LocalExecutor worker, a Celery worker's pool) and finds whatever
that process had loaded; what it has to load itself it pays for on every run:

- botocore parses an AWS service's model (its JSON description, 0.05-0.25 CPU-s each, EC2's
  the largest) once per session, and the amazon provider opens a session for every hook.
  Here all sessions of a process share one data loader, whose cache keeps what it parsed,
  and the forking processes parse the models the tasks use before they fork.
- the economics tasks import Great Expectations (2.1 CPU-s), pandas and Arrow (0.5): the
  forking processes import them first.

``bench/task_cpu.py`` measures a run with and without this module.

``plugins/.airflowignore`` keeps the plugin scan from importing this module a second time;
``tests/conftest.py`` shares the loader the same way in the test processes.
"""

from __future__ import annotations

import sys

#: Airflow reads every public name here as a cluster policy: this module declares none
__all__: list[str] = []

#: the services the project's hooks, triggers, notifiers and remote task logs call
_SERVICES = ("autoscaling", "ce", "cloudformation", "cloudwatch", "ec2", "kms", "s3", "sns", "ssm", "sts")
#: the libraries the tasks import that cost most, none of which imports Airflow
_TASK_LIBRARIES = ("boto3", "pandas", "pyarrow.parquet", "great_expectations")
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


def _import_task_libraries() -> None:
    """Import what the tasks will import; a library that is not installed is skipped (the
    task that needs it says so itself)."""
    import importlib

    for name in _TASK_LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


def _airflow_command() -> str:
    """``scheduler`` for ``airflow scheduler ...``; empty outside the ``airflow`` command."""
    if len(sys.argv) > 1 and sys.argv[0].rsplit("/", 1)[-1] == "airflow":
        return sys.argv[1]
    return ""


def _prepare(command: str) -> None:
    """Share the loader where ``command`` calls AWS; where it also forks the task
    processes, fill the loader and import the tasks' libraries."""
    if command not in _CALLS_AWS:
        return
    shared = share_botocore_data_loader()
    if command in _FORKS_TASKS:
        if shared is not None:
            _parse_task_models()
        _import_task_libraries()


_prepare(_airflow_command())
