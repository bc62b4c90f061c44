import pytest

from devstack.fleet_scaling_sim import Job, Policy, simulate, synthetic_day
from include.fleets.config import FleetConfig

CONFIG = FleetConfig("sdxl-standard", ("g4dn.xlarge",), 4, 300, 2.0, 15)
POLICY = Policy.of(CONFIG)


def test_one_job_wakes_the_fleet_waits_the_warmup_and_goes_back_to_zero():
    result = simulate([Job(arrival=3600, duration=120)], POLICY, hourly_price=1.0)

    assert result.finished == 1
    assert result.launches == 1
    # the 0 -> 1 alarm sees the job at the next minute, then the instance boots for 300 s
    assert 300 <= result.p50_wait_seconds <= 300 + 60
    # billed: boot + job + the scale-to-zero window: 15 one-minute datapoints at 0, the
    # first of them the minute in which the job ended
    billed_seconds = result.gpu_hours * 3600
    assert 300 + 120 + 14 * 60 <= billed_seconds <= 300 + 120 + 16 * 60
    assert result.cost_usd == pytest.approx(result.gpu_hours)


def test_the_same_trace_and_seed_give_the_same_figures():
    jobs = synthetic_day(800, seed=3)
    first = simulate(jobs, POLICY, hourly_price=0.5, interruptions_per_instance_hour=0.2, seed=9)
    assert (
        simulate(list(reversed(jobs)), POLICY, hourly_price=0.5, interruptions_per_instance_hour=0.2, seed=9) == first
    )


def test_a_higher_backlog_target_buys_fewer_gpu_hours_with_longer_waits():
    jobs = synthetic_day(3000, seed=5)
    results = [simulate(jobs, Policy.of(CONFIG, backlog_target=t, max_size=10), hourly_price=1.0) for t in (1, 4, 16)]

    assert [r.finished for r in results] == [len(jobs)] * 3
    hours = [r.gpu_hours for r in results]
    waits = [r.p95_wait_seconds for r in results]
    assert hours == sorted(hours, reverse=True)
    assert waits == sorted(waits)


def test_the_fleet_never_exceeds_max_size():
    burst = [Job(arrival=600 + i, duration=600) for i in range(200)]

    result = simulate(burst, Policy.of(CONFIG, max_size=3, backlog_target=1), hourly_price=1.0)

    assert result.max_instances == 3
    assert result.finished == 200


def test_a_spot_interruption_requeues_the_job_and_the_group_replaces_the_instance():
    long_jobs = [Job(arrival=60, duration=1800)]

    result = simulate(long_jobs, POLICY, hourly_price=1.0, interruptions_per_instance_hour=1.0, seed=7)

    assert result.spot_interruptions >= 1
    assert result.launches == result.spot_interruptions + 1
    assert result.finished == 1
    assert result.p50_wait_seconds > 2 * 300  # it waited through a lost attempt and a second boot


def test_synthetic_day_is_deterministic_and_about_the_asked_size():
    jobs = synthetic_day(1000, seed=11)
    assert jobs == synthetic_day(1000, seed=11)
    assert 900 <= len(jobs) <= 1100
    assert all(0 <= job.arrival < 86_400 and job.duration > 0 for job in jobs)
