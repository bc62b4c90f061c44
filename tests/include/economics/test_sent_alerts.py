"""A re-run day sends no alert it already sent; a changed value is news."""

from datetime import date

from include.alerts import Alert
from include.economics import sent_alerts

DAY = date(2026, 11, 22)


def _alert(value):
    return Alert(severity="critical", title="Tokens anomaly on feature:chat (2026-11-22)", metric="tokens", value=value)


def test_an_alert_sent_for_a_day_is_known_and_a_new_value_is_not(ledger_engine):
    engine = ledger_engine  # any of the three databases, as a warehouse
    first = _alert(5_000_000)
    assert sent_alerts.already_sent(engine, DAY, [first]) == {}

    sent_alerts.record(engine, DAY, first)

    again = sent_alerts.already_sent(engine, DAY, [first, _alert(7_000_000)])
    assert list(again) == [sent_alerts.fingerprint(DAY, first)]
    assert sent_alerts.already_sent(engine, date(2026, 11, 23), [first]) == {}
