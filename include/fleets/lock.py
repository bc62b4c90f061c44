"""The per-fleet change lock: one run at a time changes a fleet, whichever DAG it is.

A rollout, an AMI promotion (and its instance refresh), a fleet apply and a destroy all
change what a fleet runs; each takes the fleet's lock first (an SSM parameter,
:attr:`Fleet.lock`) and gives it back at its end. SSM offers one atomic step, creating a
parameter that doesn't exist (``Overwrite=False``), and this protocol builds on it alone:

* **acquire**: create the lock holding this run's id and a fresh token; read it back and
  find that token (else another run holds it).
* **held by a live run**: refused, naming the run. A lock names which other run may act
  under it (``delegate``: the AMI bake a rollout triggers), since that run works for it -
  only if that run was started by the holder's trigger task, not by a person who created
  a run of that predictable id first.
* **held by a run that ended** (failed without releasing, or deleted): taken over, once.
  The taker first creates a takeover marker named after the stale holder's token: of two
  runs that race to take over, one creates it and the other is refused. The winner then
  checks that the lock still holds that stale token, overwrites it, reads its own token
  back and removes the marker.
* **release**: only by the run whose token is in the lock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

#: A holder's run in one of these states still holds its lock.
LIVE_RUN_STATES = ("queued", "running")
#: How Airflow says a run was started by a TriggerDagRunOperator (``DagRun.triggered_by``).
DELEGATE_STARTED_BY = "operator"


class LockRefused(Exception):
    """Another run holds the fleet's lock (or is taking it over); this run changed nothing."""


@dataclass(frozen=True)
class Holder:
    """Who holds a fleet's lock, and why (the lock parameter's value, as JSON)."""

    dag_id: str
    run_id: str
    purpose: str
    token: str = ""
    delegate_dag_id: str = ""
    delegate_run_id: str = ""

    @classmethod
    def new(cls, dag_id: str, run_id: str, purpose: str, *, delegate: tuple[str, str] | None = None) -> Holder:
        dag, run = delegate or ("", "")
        return cls(dag_id, run_id, purpose, uuid.uuid4().hex, dag, run)

    @classmethod
    def parse(cls, value: str) -> Holder:
        try:
            data = json.loads(value)
            return cls(**{key: str(data.get(key, "")) for key in cls.__dataclass_fields__})
        except (ValueError, TypeError, AttributeError):
            return cls("?", "?", f"unreadable lock value {value[:80]!r}")

    def value(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def is_run(self, dag_id: str, run_id: str) -> bool:
        return (self.dag_id, self.run_id) == (dag_id, run_id)

    def delegates_to(self, dag_id: str, run_id: str) -> bool:
        return bool(self.delegate_run_id) and (self.delegate_dag_id, self.delegate_run_id) == (dag_id, run_id)

    def describe(self) -> str:
        return f"{self.dag_id} run {self.run_id} ({self.purpose})"


class ParameterStore(Protocol):
    """The SSM calls the protocol needs (:class:`bp_aws.hooks.ssm_parameters.SsmParameterHook` has them)."""

    def create(self, name: str, value: str) -> bool: ...  # False when it exists already

    def read(self, name: str) -> str | None: ...

    def overwrite(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


def takeover_marker(lock: str, stale: Holder) -> str:
    return f"{lock}_takeover_{stale.token or 'untokened'}"


def acquire(
    store: ParameterStore,
    lock: str,
    me: Holder,
    run_state: Callable[[str, str], str],
    started_by: Callable[[], str | None] = lambda: None,
) -> str:
    """Take ``lock`` for ``me`` (or confirm this run holds it already); say how.

    ``run_state(dag_id, run_id)`` is the Airflow state of a holder's run ("gone" when it
    no longer exists); ``started_by()`` how this run was started (Airflow's
    ``triggered_by``: ``operator`` for a run a trigger task made), asked only when the
    lock names this run as its delegate. Raises :class:`LockRefused` when another run
    holds it."""
    if store.create(lock, me.value()):
        return _confirm(store, lock, me, f"took {lock}")
    current = store.read(lock)
    if current is None:  # released between the two calls: try once more
        if store.create(lock, me.value()):
            return _confirm(store, lock, me, f"took {lock}")
        current = store.read(lock) or "{}"
    holder = Holder.parse(current)
    if holder.is_run(me.dag_id, me.run_id):
        return f"this run holds {lock} already (a cleared task ran again)"
    if holder.delegates_to(me.dag_id, me.run_id):
        how = started_by()
        if how != DELEGATE_STARTED_BY:
            raise LockRefused(
                f"{lock} is held by {holder.describe()}, which lets run {me.run_id} act under it only when its own "
                f"trigger task started it; this run was started by {how or 'someone else'}"
            )
        return f"acting under {lock}, held for it by {holder.describe()}"
    state = run_state(holder.dag_id, holder.run_id)
    if state in LIVE_RUN_STATES:
        raise LockRefused(
            f"{lock} is held by {holder.describe()}, which is {state}: one change per fleet at a time. "
            "Run again when it has ended."
        )
    marker = takeover_marker(lock, holder)
    if not store.create(marker, me.value()):
        raise LockRefused(f"another run is taking over {lock} from {holder.describe()} (marker {marker})")
    try:
        if store.read(lock) != current:
            raise LockRefused(f"{lock} changed while this run was taking it over from {holder.describe()}")
        store.overwrite(lock, me.value())
        return _confirm(store, lock, me, f"took over {lock} from {holder.describe()}, which is {state}")
    finally:
        store.delete(marker)


def _confirm(store: ParameterStore, lock: str, me: Holder, said: str) -> str:
    held = store.read(lock)
    if held is None or Holder.parse(held).token != me.token:
        found = Holder.parse(held).describe() if held else "nobody"
        raise LockRefused(f"{lock} is held by {found}, not this run, after it was taken")
    return said


def release(store: ParameterStore, lock: str, dag_id: str, run_id: str) -> str:
    """Delete ``lock`` if this run holds it; never another run's."""
    current = store.read(lock)
    if current is None:
        return f"{lock} is not held"
    holder = Holder.parse(current)
    if not holder.is_run(dag_id, run_id):
        return f"{lock} is held by {holder.describe()}, not this run: left as it is"
    store.delete(lock)
    return f"released {lock}"


def release_stale(store: ParameterStore, lock: str, me: Holder, run_state: Callable[[str, str], str]) -> str:
    """Delete ``lock`` when its holder's run has ended (the guardrails' remediation), under
    the takeover marker an acquiring run takes too, so the two never act on one stale
    holder at once; a live holder's lock is left as it is."""
    current = store.read(lock)
    if current is None:
        return f"{lock} is not held"
    holder = Holder.parse(current)
    state = run_state(holder.dag_id, holder.run_id)
    if state in LIVE_RUN_STATES:
        return f"{lock} is held by {holder.describe()}, which is {state}: left as it is"
    marker = takeover_marker(lock, holder)
    if not store.create(marker, me.value()):
        return f"another run is taking over {lock} (marker {marker}): left to it"
    try:
        if store.read(lock) != current:
            return f"{lock} changed meanwhile: left as it is"
        store.delete(lock)
        return f"released {lock}, held by {holder.describe()}, which is {state}"
    finally:
        store.delete(marker)
