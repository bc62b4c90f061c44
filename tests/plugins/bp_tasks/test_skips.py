"""A skipped task says why in its own log: Airflow writes only "Skipping task."."""

from __future__ import annotations

import logging

from airflow.sdk.exceptions import AirflowSkipException

from bp_tasks.common import skipped


def test_a_skip_logs_its_reason_and_carries_it(caplog):
    with caplog.at_level(logging.INFO, logger="bp.tasks"):
        error = skipped("prices.csv has the rows the accepted version has: nothing to do.")

    assert isinstance(error, AirflowSkipException)
    assert str(error) == "prices.csv has the rows the accepted version has: nothing to do."
    assert "Skipped: prices.csv has the rows the accepted version has: nothing to do." in caplog.text
