"""An extension layer over moto's own backends that gives the calls moto lacks their
documented AWS behaviour. Loaded by the in-process tests (``tests/conftest.py``) and
by the demo's moto server (``devstack.moto_server``); production code never
imports it.
"""

from __future__ import annotations

from devstack.emulator import autoscaling, cloudformation, cloudwatch, costs, drift, lifecycle, s3, ssm

_installed = False


def install() -> None:
    """Patch moto once per process; safe to call again."""
    global _installed
    if not _installed:
        autoscaling.install()
        lifecycle.install()
        cloudformation.install()
        cloudwatch.install()
        costs.install()
        drift.install()
        s3.install()
        ssm.install()
        _installed = True
