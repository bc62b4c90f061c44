"""The per-fleet change lock's protocol (include.fleets.lock) on SSM (the moto server,
through the real SsmLockStore): one holder, takeover only from an ended run and only
once, release only by the holder, a delegate acting under its holder's lock."""

from __future__ import annotations

import threading

import pytest

from bp_tasks.fleet_lock import SsmLockStore
from include.fleets import lock
from include.naming.fleet import Fleet

LOCK = Fleet("staging", "gpu-default").lock


@pytest.fixture
def store(aws_http):
    return SsmLockStore("aws_default")


def _states(**by_run: str):
    return lambda dag_id, run_id: by_run.get(run_id, "gone")


def test_the_first_run_takes_the_lock_and_a_second_is_refused_naming_it(store):
    first = lock.Holder.new("gpu_bundle_rollout", "r1", "rollout of bundle b-1 (refresh)")
    second = lock.Holder.new("gpu_fleet_provision", "p1", "fleet apply")

    assert lock.acquire(store, LOCK, first, _states(r1="running")) == f"took {LOCK}"
    with pytest.raises(lock.LockRefused, match=r"held by gpu_bundle_rollout run r1 \(rollout of bundle b-1"):
        lock.acquire(store, LOCK, second, _states(r1="running"))
    assert lock.Holder.parse(store.read(LOCK)) == first


def test_the_holder_taking_it_again_is_a_no_op_and_only_the_holder_releases(store):
    holder = lock.Holder.new("gpu_bundle_rollout", "r1", "rollout")
    lock.acquire(store, LOCK, holder, _states(r1="running"))
    again = lock.Holder.new("gpu_bundle_rollout", "r1", "rollout")  # a cleared task: a new token

    assert "holds" in lock.acquire(store, LOCK, again, _states(r1="running"))
    assert lock.release(store, LOCK, "gpu_fleet_provision", "r1").endswith("not this run: left as it is")
    assert store.read(LOCK) is not None
    assert lock.release(store, LOCK, "gpu_bundle_rollout", "r1") == f"released {LOCK}"
    assert store.read(LOCK) is None


def test_a_lock_left_by_an_ended_run_is_taken_over(store):
    stale = lock.Holder.new("gpu_bundle_rollout", "dead", "rollout")
    store.create(LOCK, stale.value())
    me = lock.Holder.new("gpu_ami_build_and_bake", "a1", "AMI promotion")

    said = lock.acquire(store, LOCK, me, _states(dead="failed"))

    assert said == f"took over {LOCK} from gpu_bundle_rollout run dead (rollout), which is failed"
    assert lock.Holder.parse(store.read(LOCK)) == me
    assert store.read(lock.takeover_marker(LOCK, stale)) is None  # the marker is gone again


def test_of_two_runs_taking_over_one_stale_lock_exactly_one_wins(store):
    stale = lock.Holder.new("gpu_bundle_rollout", "dead", "rollout")
    store.create(LOCK, stale.value())
    contenders = [lock.Holder.new("gpu_bundle_rollout", f"r{n}", "rollout") for n in range(2)]
    # both read the stale holder before either takes it over: the race the marker settles
    read_stale = threading.Barrier(2)

    class RacingStore(SsmLockStore):
        def read(self, name):
            value = super().read(name)
            if name == LOCK and value == stale.value() and not getattr(threading.current_thread(), "read", False):
                threading.current_thread().read = True
                read_stale.wait(timeout=10)
            return value

    racing = RacingStore("aws_default")
    outcomes: dict[str, str] = {}

    def contend(holder):
        try:
            outcomes[holder.run_id] = lock.acquire(racing, LOCK, holder, _states(dead="failed"))
        except lock.LockRefused as refused:
            outcomes[holder.run_id] = f"refused: {refused}"

    threads = [threading.Thread(target=contend, args=(holder,)) for holder in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [run for run, said in outcomes.items() if said.startswith("took over")]
    assert len(winners) == 1, outcomes
    assert lock.Holder.parse(store.read(LOCK)).run_id == winners[0]
    (loser,) = set(outcomes) - set(winners)
    assert outcomes[loser].startswith("refused: ")


def test_a_delegate_acts_under_its_holders_lock_and_leaves_it(store):
    holder = lock.Holder.new("gpu_bundle_rollout", "r1", "rollout", delegate=("gpu_ami_build_and_bake", "bake-of-r1"))
    lock.acquire(store, LOCK, holder, _states(r1="running"))
    bake = lock.Holder.new("gpu_ami_build_and_bake", "bake-of-r1", "AMI promotion")
    stranger = lock.Holder.new("gpu_ami_build_and_bake", "someone-else", "AMI promotion")

    started = lambda: lock.DELEGATE_STARTED_BY  # noqa: E731 - the rollout's trigger task started it

    assert lock.acquire(store, LOCK, bake, _states(r1="running"), started).startswith(f"acting under {LOCK}")
    with pytest.raises(lock.LockRefused):
        lock.acquire(store, LOCK, stranger, _states(r1="running"), started)
    assert lock.release(store, LOCK, "gpu_ami_build_and_bake", "bake-of-r1").endswith("left as it is")
    assert lock.Holder.parse(store.read(LOCK)) == holder


def test_a_delegates_run_id_created_first_by_a_person_acts_under_nothing(store):
    """The bake's run id is predictable (``rollout_bake__<rollout run>``): whoever may
    trigger the AMI DAG could create it before the rollout does. Airflow says how a run
    was started; only the rollout's trigger task makes ``operator`` runs."""
    holder = lock.Holder.new("gpu_bundle_rollout", "r1", "rollout", delegate=("gpu_ami_build_and_bake", "bake-of-r1"))
    lock.acquire(store, LOCK, holder, _states(r1="running"))
    squatter = lock.Holder.new("gpu_ami_build_and_bake", "bake-of-r1", "AMI promotion")

    for how in ("rest_api", "ui", None):
        with pytest.raises(lock.LockRefused, match=f"was started by {how or 'someone else'}"):
            lock.acquire(store, LOCK, squatter, _states(r1="running"), lambda how=how: how)
    assert lock.Holder.parse(store.read(LOCK)) == holder


def test_a_damaged_lock_value_still_names_something_and_is_never_released_by_a_stranger(store):
    store.create(LOCK, "not json")

    assert lock.Holder.parse("not json").describe().startswith("? run ?")
    assert lock.release(store, LOCK, "gpu_bundle_rollout", "r1").endswith("left as it is")


def test_a_holders_run_state_is_read_as_airflow_reports_it():
    from types import SimpleNamespace

    from airflow.utils.state import DagRunState

    from bp_tasks.fleet_lock import run_state

    running = SimpleNamespace(get_dagrun_state=lambda dag_id, run_id: DagRunState.RUNNING)

    assert run_state(running)("gpu_bundle_rollout", "r1") in lock.LIVE_RUN_STATES


def test_the_guardrails_release_a_stale_lock_never_a_live_one_nor_one_being_taken_over(store):
    guard = lock.Holder.new("gpu_fleet_guardrails", "g1", "stale lock remediation")
    holder = lock.Holder.new("gpu_bundle_rollout", "r1", "rollout")
    store.create(LOCK, holder.value())

    assert lock.release_stale(store, LOCK, guard, _states(r1="running")).endswith("which is running: left as it is")
    store.create(lock.takeover_marker(LOCK, holder), "a rollout taking it over")
    assert "another run is taking over" in lock.release_stale(store, LOCK, guard, _states(r1="failed"))
    assert store.read(LOCK) == holder.value()
    store.delete(lock.takeover_marker(LOCK, holder))

    said = lock.release_stale(store, LOCK, guard, _states(r1="failed"))

    assert said == f"released {LOCK}, held by gpu_bundle_rollout run r1 (rollout), which is failed"
    assert store.read(LOCK) is None
    assert store.read(lock.takeover_marker(LOCK, holder)) is None
    assert lock.release_stale(store, LOCK, guard, _states()) == f"{LOCK} is not held"  # a re-run: nothing to do
