"""Which release a change started with: the first day of the change, then the release that
began serving the feature or model then."""

from datetime import date, timedelta

import pandas as pd

from include.economics import releases

DAY = date(2026, 11, 22)


def _days(*values, last=DAY):
    """The days before ``last``, oldest first, with these values."""
    return {last - timedelta(days=len(values) - k): value for k, value in enumerate(values)}


def _mix(*rows):
    return pd.DataFrame(rows, columns=["day", "feature_name", "model_name", "release", "requests"])


def test_a_change_starts_on_the_first_day_of_the_run_that_held_half_its_excess():
    # baseline 100, today 300: a day counts from 200
    assert releases.change_start(DAY, 300, 100, _days(100, 100, 100)) == DAY
    assert releases.change_start(DAY, 300, 100, _days(100, 210, 200)) == DAY - timedelta(days=2)
    assert releases.change_start(DAY, 300, 100, _days(250, 199, 260)) == DAY - timedelta(days=1)
    # a day without a value ends the run
    gap = _days(250, 250, 250)
    del gap[DAY - timedelta(days=2)]
    assert releases.change_start(DAY, 300, 100, gap) == DAY - timedelta(days=1)


def test_the_release_is_one_that_began_serving_the_feature_when_the_change_started():
    start = date(2026, 11, 16)
    mix = _mix(
        (start - timedelta(days=3), "image-gen", "gemini-2.5-pro", "2026.11.1", 900),
        (start - timedelta(days=1), "image-gen", "gemini-2.5-pro", "2026.11.1", 900),
        (start, "image-gen", "gemini-2.5-pro", "2026.11.1", 300),
        (start, "image-gen", "gemini-2.5-pro", "2026.11.2", 600),
        (start, "chat", "gpt-4.1", "2026.11.9", 600),  # another feature's release
        (start + timedelta(days=1), "image-gen", "gemini-2.5-pro", "2026.11.2", 900),
    )
    link = releases.started_with(mix, "feature", "image-gen", start)
    assert (link.release, link.first_served, link.change_start) == ("2026.11.2", start, start)
    assert link.sentence() == "The change started on 2026-11-16 with release 2026.11.2 (first served 2026-11-16)."
    # a release live for days before the change is not blamed
    assert releases.started_with(mix, "feature", "image-gen", start + timedelta(days=2)) is None
    # by model too
    assert releases.started_with(mix, "model", "gemini-2.5-pro", start).release == "2026.11.2"
    assert releases.started_with(_mix(), "feature", "image-gen", start) is None


def test_a_rollout_that_began_the_evening_before_counts_and_the_busiest_new_release_wins():
    start = date(2026, 11, 16)
    mix = _mix(
        (start - timedelta(days=1), "chat", "gpt-4.1", "2026.11.2", 10),
        (start, "chat", "gpt-4.1", "2026.11.2", 400),
        (start, "chat", "gpt-4.1", "2026.11.3", 100),
        (start, "chat", "gpt-4.1", None, 5000),  # requests without a release name none
    )
    assert releases.started_with(mix, "feature", "chat", start).release == "2026.11.2"
    assert releases.started_with(mix, "feature", "chat", start).first_served == start - timedelta(days=1)


def test_a_week_over_week_regression_starts_on_the_first_day_that_held_half_the_change():
    monday = date(2026, 11, 16)
    rows = pd.DataFrame(
        [(monday + timedelta(days=k), 1000, 0.02, 900.0 if k < 3 else 1500.0) for k in range(7)],
        columns=["day", "requests", "failure_rate", "p95_ms"],
    )
    rows["cost_usd"] = rows["requests"] * 0.01
    thursday = monday + timedelta(days=3)
    mix = _mix(
        (monday, "image-gen", "gemini-2.5-pro", "2026.11.1", 1000),
        (thursday, "image-gen", "gemini-2.5-pro", "2026.11.2", 1000),
    )
    link = releases.regression_link(rows, "feature", "image-gen", "p95_ms", 900.0, 1243.0, mix)
    assert (link.release, link.change_start) == ("2026.11.2", thursday)
    # no day held half the change: nothing is named
    assert releases.regression_link(rows, "feature", "image-gen", "failure_rate", 0.01, 0.05, mix) is None
