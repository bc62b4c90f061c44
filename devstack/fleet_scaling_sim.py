"""A deterministic replay of GPU jobs through a fleet's scaling policy.

It answers "what would this backlog_target (or max_size, or scale_to_zero_minutes) have
cost, and how long would jobs have waited?" from a job trace, so tuning a fleet is
evidence, not taste. The model follows the fleet stack (``gpu-fleet.yaml``):

* **0 -> 1**: a minute in which jobs wait while the desired capacity is 0 sets it to 1
  (the step policy on the jobs-waiting-at-zero alarm);
* **1 -> N**: target tracking on BacklogPerInstance = QueueDepth / ActiveWorkers, where
  QueueDepth counts queued and running jobs (seed 001). Like AWS's target tracking it
  scales out after ``scale_out_minutes`` one-minute datapoints above the target and in
  after ``scale_in_minutes`` below it, to ``ceil(QueueDepth / target)``, never below 1;
* **N -> 0**: ``scale_to_zero_minutes`` minutes of QueueDepth 0 set the capacity to 0
  (the queue-empty alarm and the scale-to-zero function);
* an instance boots for ``warmup_seconds`` before it takes jobs, and is billed from
  launch; a busy worker protects itself from scale in, so scale in takes idle ones;
* a Spot interruption (a seeded random draw per instance and step) reclaims an instance;
  its job goes back to the front of the queue and the group launches a replacement.

Everything is a function of the inputs and the seed: the same trace gives the same
figures on every machine.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field

from include.fleets.config import FleetConfig

DAY_SECONDS = 86_400
METRIC_PERIOD_SECONDS = 60


@dataclass(frozen=True)
class Job:
    arrival: float
    duration: float


@dataclass(frozen=True)
class Policy:
    max_size: int
    warmup_seconds: int
    backlog_target: float
    scale_to_zero_minutes: int
    #: AWS target tracking: 3 datapoints above the target to scale out, 15 below to scale in.
    scale_out_minutes: int = 3
    scale_in_minutes: int = 15

    @classmethod
    def of(cls, config: FleetConfig, **changes: float) -> Policy:
        values = {
            "max_size": config.max_size,
            "warmup_seconds": config.warmup_seconds,
            "backlog_target": config.backlog_target,
            "scale_to_zero_minutes": config.scale_to_zero_minutes,
        }
        return cls(**{**values, **changes})


@dataclass
class _Instance:
    launched_at: float
    ready_at: float
    job: Job | None = None
    busy_until: float = 0.0


@dataclass(frozen=True)
class Result:
    jobs: int
    finished: int
    gpu_hours: float
    cost_usd: float
    p50_wait_seconds: float
    p95_wait_seconds: float
    max_instances: int
    spot_interruptions: int
    launches: int


@dataclass
class _Fleet:
    policy: Policy
    instances: list[_Instance] = field(default_factory=list)
    desired: int = 0
    launches: int = 0
    backlog_history: list[float] = field(default_factory=list)
    empty_minutes: int = 0

    def ready(self, now: float) -> list[_Instance]:
        return [i for i in self.instances if i.ready_at <= now]

    def evaluate(self, now: float, queued: int) -> None:
        """One metric period: the alarms and policies decide the desired capacity."""
        running = sum(1 for i in self.instances if i.job is not None)
        queue_depth = queued + running
        active = len(self.ready(now))
        backlog = queue_depth / active if active else float(queue_depth)
        self.backlog_history.append(backlog)
        self.empty_minutes = self.empty_minutes + 1 if queue_depth == 0 else 0
        policy = self.policy
        if self.desired == 0:
            if queue_depth > 0:
                self.desired = 1
            return
        if self.empty_minutes >= policy.scale_to_zero_minutes:
            self.desired = 0
            return
        wanted = max(1, min(policy.max_size, math.ceil(queue_depth / policy.backlog_target)))
        recent_out = self.backlog_history[-policy.scale_out_minutes :]
        recent_in = self.backlog_history[-policy.scale_in_minutes :]
        if len(recent_out) == policy.scale_out_minutes and all(b > policy.backlog_target for b in recent_out):
            self.desired = max(self.desired, wanted)
        elif len(recent_in) == policy.scale_in_minutes and all(b < policy.backlog_target for b in recent_in):
            self.desired = min(self.desired, wanted)

    def converge(self, now: float) -> None:
        """Launch or terminate toward the desired capacity; busy workers are protected."""
        while len(self.instances) < self.desired:
            self.instances.append(_Instance(launched_at=now, ready_at=now + self.policy.warmup_seconds))
            self.launches += 1
        surplus = len(self.instances) - self.desired
        if surplus > 0:
            # booting instances first, then idle ones; never one that runs a job
            idle = sorted((i for i in self.instances if i.job is None), key=lambda i: -i.ready_at)
            for instance in idle[:surplus]:
                self.instances.remove(instance)


def simulate(
    jobs: list[Job],
    policy: Policy,
    *,
    hourly_price: float,
    interruptions_per_instance_hour: float = 0.0,
    seed: int = 0,
    step_seconds: int = 10,
) -> Result:
    """Replay ``jobs`` (any order) and report cost and waits.

    Runs until every job is done and the fleet is back at 0, or two days, whichever
    comes first; jobs still queued then count as not finished.
    """
    if METRIC_PERIOD_SECONDS % step_seconds:
        raise ValueError(f"step_seconds must divide {METRIC_PERIOD_SECONDS}")
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    pending = sorted(jobs, key=lambda job: job.arrival)
    queue: list[Job] = []
    waits: dict[int, float] = {}  # by job identity: a restarted job's wait runs to its last start
    fleet = _Fleet(policy)
    interruption_chance = interruptions_per_instance_hour * step_seconds / 3600
    instance_seconds = 0.0
    interruptions = max_instances = 0
    next_job = 0
    now = 0.0
    while now < 2 * DAY_SECONDS:
        for instance in list(fleet.instances):
            if interruption_chance and rng.random() < interruption_chance:
                fleet.instances.remove(instance)
                interruptions += 1
                if instance.job is not None:
                    queue.insert(0, instance.job)
        for instance in fleet.instances:
            if instance.job is not None and instance.busy_until <= now:
                instance.job = None
        while next_job < len(pending) and pending[next_job].arrival <= now:
            queue.append(pending[next_job])
            next_job += 1
        for instance in fleet.ready(now):
            if instance.job is None and queue:
                job = queue.pop(0)
                instance.job, instance.busy_until = job, now + job.duration
                waits[id(job)] = now - job.arrival
        if now % METRIC_PERIOD_SECONDS == 0:
            fleet.evaluate(now, len(queue))
        fleet.converge(now)
        max_instances = max(max_instances, len(fleet.instances))
        instance_seconds += len(fleet.instances) * step_seconds
        if next_job == len(pending) and not queue and not fleet.instances and fleet.desired == 0:
            break
        now += step_seconds

    gpu_hours = instance_seconds / 3600
    started = list(waits.values())
    cuts = statistics.quantiles(started, n=100, method="inclusive") if len(started) > 1 else (started or [0.0]) * 99
    finished = len(started) - sum(1 for i in fleet.instances if i.job is not None) - len(queue)
    return Result(
        jobs=len(jobs),
        finished=finished,
        gpu_hours=gpu_hours,
        cost_usd=gpu_hours * hourly_price,
        p50_wait_seconds=cuts[49],
        p95_wait_seconds=cuts[94],
        max_instances=max_instances,
        spot_interruptions=interruptions,
        launches=fleet.launches,
    )


def synthetic_day(jobs_per_day: int, *, seed: int = 7, median_duration: float = 45.0) -> list[Job]:
    """A day of jobs: Poisson arrivals with a daytime peak (15:00 UTC, 3x the night rate)
    and a burst of 5% of the day's jobs at 10:00; log-normal durations."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret

    def rate(second: float) -> float:  # relative arrival rate, peak 1.0
        hour = second / 3600
        return 0.25 + 0.75 * max(0.0, math.cos((hour - 15) / 24 * 2 * math.pi)) ** 2

    mean_rate = sum(rate(minute * 60) for minute in range(1440)) / 1440
    peak_per_second = jobs_per_day * 0.95 / DAY_SECONDS / mean_rate
    jobs = []
    second = 0.0
    while True:  # thinning: candidates at the peak rate, kept in proportion to rate()
        second += rng.expovariate(peak_per_second)
        if second >= DAY_SECONDS:
            break
        if rng.random() < rate(second):
            jobs.append(Job(second, rng.lognormvariate(math.log(median_duration), 0.5)))
    burst_at = 10 * 3600
    for _ in range(round(jobs_per_day * 0.05)):
        jobs.append(Job(burst_at + rng.uniform(0, 120), rng.lognormvariate(math.log(median_duration), 0.5)))
    return sorted(jobs, key=lambda job: job.arrival)
