"""Task bodies of ``ai_price_catalogue``: the catalogue the economics read (Variable
``ai_price_catalogue``) against the version last accepted, kept in object storage
(``<object_storage_base>/economics/price_catalogue/accepted.csv``), so that any worker
compares with the same one."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import Variable, task

from bp_tasks.common import report_outcome, skipped
from bp_tasks.economics_settings import PRICE_CATALOGUE, Settings
from bp_tasks.storage import read_text, storage_base

log = logging.getLogger("bp.economics")

#: How far back a change reprices (Variable ``reprice_max_days``): older days keep their cost.
DEFAULT_REPRICE_DAYS = 90


def accepted_catalogue():
    return storage_base() / "economics" / "price_catalogue" / "accepted.csv"


@task(outlets=[PRICE_CATALOGUE], multiple_outputs=False)
def publish_change(outlet_events=None) -> dict:
    """Validate the catalogue (a bad one fails here, naming its line, and is not accepted),
    compare it with the accepted version and, when a row was added, edited or removed,
    accept it and update the asset with what changed and the past days it prices
    differently. Unchanged: skipped, no asset event. The first version ever seen is
    accepted as it is: there is nothing to compare it with."""
    from include.economics.catalogue_changes import changes
    from include.economics.prices import PriceBook

    location = Settings.load().price_catalogue
    text = read_text(location)
    new = PriceBook.from_text(text, location)
    accepted = accepted_catalogue()
    if not accepted.exists():
        accepted.parent.mkdir(parents=True, exist_ok=True)
        accepted.write_text(text)
        raise skipped(f"First version of {location} seen ({len(new.rows)} rows): accepted as it is.")
    old = PriceBook.from_text(accepted.read_text(), str(accepted))
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    change = changes(old, new, yesterday, int(Variable.get("reprice_max_days", default=str(DEFAULT_REPRICE_DAYS))))
    if not change:
        raise skipped(f"{location} has the rows the accepted version has: nothing to do.")
    outlet_events[PRICE_CATALOGUE].extra = {"catalogue": location, **change.as_extra()}
    # written last: a try that fails before this point leaves the change to the next one
    accepted.write_text(text)
    report_outcome(
        f"Price catalogue {location} changed: {change.describe()}",
        "ai_economics_reprice recomputes the days it prices differently (it starts on this change)",
    )
    return {"catalogue": location, **change.as_extra()}
