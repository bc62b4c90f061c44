"""Where the economics DAGs' scheduled history begins: catchup of ``ai_economics_daily``
runs every day since, and ``weekly_review_pack`` runs its latest missed Monday. A
deployment setting (environment ``BP_ECONOMICS_START_DATE``, YYYY-MM-DD); the local
stack sets it to tomorrow, so that unpausing creates no scheduled run beside the demo's."""

from __future__ import annotations

import os

import pendulum

ECONOMICS_START = pendulum.parse(os.environ.get("BP_ECONOMICS_START_DATE", "2026-01-01"), tz="UTC")
