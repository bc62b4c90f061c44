"""The node agent against the ComfyUI double (real HTTP), the emulator (moto in-process)
and NVML's double: what it counts, the distribution it publishes, the protection it asks
for, what it does when CloudWatch or ComfyUI go away."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config

from gpu_worker.agent.comfyui import ComfyUI, PromptTracker, finished_prompt
from gpu_worker.agent.period import MAX_VALUES, distribution
from gpu_worker.metrics import NAMESPACE
from tests.gpu_worker.conftest import FLEET, Clock, make_agent, protected, statistic

# --- what a minute holds ------------------------------------------------------------------


def test_a_failed_prompt_is_an_error_and_a_slow_one_moves_the_distribution(comfyui, aws, fleet_group, tmp_path):
    clock = Clock()
    node = comfyui.node(fleet_group)
    agent = make_agent(comfyui, aws, fleet_group, clock, tmp_path)
    for seconds in (4.0, 4.2, 3.8):
        node.run(seconds=seconds)
    node.run(failed=True, seconds=2.0)
    agent.sample()
    clock.advance(60)
    agent.step()  # the minute closes and goes out in one call
    first = {"JobCount": statistic(aws, "JobCount", "Sum"), "p50": statistic(aws, "JobProcessingTime", "p50")}
    for _ in range(4):
        node.run(seconds=30.0)  # a slow bundle: as many slow prompts as fast ones, and one more
    node.run(seconds=31.0)
    agent.sample()
    clock.advance(60)
    agent.step()

    assert first == {"JobCount": [4.0], "p50": [3.8]}
    assert statistic(aws, "ErrorRate", "Average") == [pytest.approx(100 / 9)]  # 1 failed of 9, job-weighted
    assert statistic(aws, "JobCount", "Sum") == [9.0]
    assert statistic(aws, "JobProcessingTime", "p50") == [30.0]
    assert statistic(aws, "JobProcessingTime", "p90") == [31.0]
    by_bundle = [*FLEET, {"Name": "BundleId", "Value": "b-2026-12"}]
    assert statistic(aws, "JobCount", "Sum", by_bundle) == [9.0]
    assert statistic(aws, "GPUUtilization", "Maximum") == [60.0]
    assert agent.publisher.calls == 2


def test_an_idle_minute_reports_zero_jobs_and_nothing_else_of_its_jobs(comfyui, aws, fleet_group, tmp_path):
    clock = Clock()
    agent = make_agent(comfyui, aws, fleet_group, clock, tmp_path)
    agent.sample()
    clock.advance(60)
    agent.step()

    names = {m["MetricName"] for m in aws("cloudwatch").list_metrics(Namespace=NAMESPACE)["Metrics"]}
    assert names == {"JobCount", "GPUUtilization", "GPUMemoryUtilization"}
    assert statistic(aws, "JobCount", "Sum") == [0.0]


def test_prompts_that_ended_before_the_agent_started_or_were_interrupted_are_not_counted(comfyui):
    node = comfyui.node("n")
    node.run(seconds=1.0)
    tracker = PromptTracker(ComfyUI(comfyui.url("n")), since=time.time() + 0.001)
    time.sleep(0.01)
    node.submit()
    node.start()
    node.finish(interrupted=True)
    node.run(seconds=2.0)

    assert [p.seconds for p in tracker.new()] == [2.0]
    assert tracker.new() == []


def test_a_burst_larger_than_the_window_is_counted_whole(comfyui):
    node = comfyui.node("n")
    tracker = PromptTracker(ComfyUI(comfyui.url("n")), since=time.time() - 1)
    assert tracker.new() == []
    for _ in range(300):
        node.run(seconds=1.0)

    assert len(tracker.new()) == 300
    assert tracker.window <= 600


def test_a_history_entry_reads_as_comfyui_writes_it():
    entry = {
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [
                ["execution_start", {"prompt_id": "p", "timestamp": 1_700_000_000_000}],
                ["execution_error", {"prompt_id": "p", "timestamp": 1_700_000_002_500, "exception_type": "OOM"}],
            ],
        }
    }
    prompt = finished_prompt("p", entry)

    assert (prompt.failed, prompt.seconds, prompt.finished_at) == (True, 2.5, 1_700_000_002.5)


def test_a_distribution_keeps_at_most_150_values_and_its_counts():
    values, counts = distribution([i / 7 for i in range(2000)])

    assert len(values) <= MAX_VALUES
    assert sum(counts) == 2000
    assert distribution([4.0, 4.0, 12.0]) == ([4.0, 12.0], [2.0, 1.0])


# --- scale-in protection ------------------------------------------------------------------


def test_protection_goes_on_with_the_first_queued_prompt_and_off_after_the_grace_period(
    comfyui, aws, fleet_group, tmp_path
):
    clock = Clock()
    node = comfyui.node(fleet_group)
    agent = make_agent(comfyui, aws, fleet_group, clock, tmp_path, idle_grace_seconds=120)
    agent.sample()
    assert not protected(aws, fleet_group)

    node.submit()  # queued, not running yet
    agent.sample()
    assert protected(aws, fleet_group)
    node.start()
    clock.advance(200)
    agent.sample()  # a long prompt: still busy, still protected
    node.finish(seconds=200)
    clock.advance(5)
    agent.sample()
    protected_in_grace = protected(aws, fleet_group)
    clock.advance(120)
    agent.sample()

    assert protected_in_grace
    assert not protected(aws, fleet_group)
    assert agent.protection.changes == 2


def test_stopping_clears_protection_and_publishes_what_it_saw(comfyui, aws, fleet_group, tmp_path):
    clock = Clock()
    node = comfyui.node(fleet_group)
    agent = make_agent(comfyui, aws, fleet_group, clock, tmp_path)
    node.run(seconds=3.0)
    node.submit()
    agent.sample()
    assert protected(aws, fleet_group)

    agent.shutdown()

    assert not protected(aws, fleet_group)
    assert statistic(aws, "JobCount", "Sum") == [1.0]


# --- outages ------------------------------------------------------------------------------


def test_ten_minutes_without_cloudwatch_lose_no_minute(comfyui, aws, fleet_group, tmp_path):
    clock = Clock(ago=20 * 60)  # the outage's 10 minutes and the backoff's end lie in the past
    node = comfyui.node(fleet_group)
    agent = make_agent(comfyui, aws, fleet_group, clock, tmp_path)
    working = agent.publisher.cloudwatch
    agent.publisher.cloudwatch = boto3.client(  # nothing listens there: refused at once
        "cloudwatch", endpoint_url="http://127.0.0.1:9", config=Config(retries={"max_attempts": 1})
    )
    for _ in range(10):
        node.run(seconds=4.0)
        node.run(seconds=4.0)
        agent.sample()
        clock.advance(60)
        agent.step()
    failures = agent.publisher.failures
    agent.publisher.cloudwatch = working
    for _ in range(12):  # the backoff ends, the backlog goes in one call
        clock.advance(30)
        agent.step()

    assert failures >= 3
    assert agent.publisher.dropped == 0
    assert agent.publisher.pending == 0
    assert statistic(aws, "JobCount", "Sum") == [20.0]
    end = datetime.now(UTC)
    minutes = aws("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {"Namespace": NAMESPACE, "MetricName": "JobCount", "Dimensions": FLEET},
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=end - timedelta(minutes=30),
        EndTime=end,
    )["MetricDataResults"][0]
    assert len(minutes["Values"]) >= 10  # each minute kept its own timestamp


def test_a_cloudwatch_that_hangs_never_holds_the_sampler(comfyui, aws, fleet_group, tmp_path):
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)  # accepts into the backlog, never answers
    agent = make_agent(comfyui, aws, fleet_group, None, tmp_path, poll_seconds=0.05, publish_seconds=0.2)
    agent.publisher.cloudwatch = boto3.client(
        "cloudwatch",
        endpoint_url=f"http://127.0.0.1:{hanging.getsockname()[1]}",
        config=Config(read_timeout=3, connect_timeout=1, retries={"max_attempts": 1}),
    )
    stop = threading.Event()
    running = threading.Thread(target=agent.run, args=(stop,))
    running.start()
    time.sleep(1.2)  # the publisher thread is stuck in its first call by now
    comfyui.node(fleet_group).submit()
    time.sleep(0.5)
    protected_while_stuck = protected(aws, fleet_group)
    stop.set()
    running.join(timeout=15)
    hanging.close()

    assert protected_while_stuck
    assert agent.publisher.pending > 0 or agent.publisher.failures > 0


def test_a_comfyui_restart_is_survived_and_counts_nothing_twice(comfyui, aws, fleet_group, tmp_path):
    clock = Clock()
    node = comfyui.node(fleet_group)
    agent = make_agent(comfyui, aws, fleet_group, clock, tmp_path, idle_grace_seconds=30)
    node.run(seconds=4.0)
    node.submit()
    agent.sample()
    comfyui.stop()  # ComfyUI dies: connections refused
    clock.advance(10)
    agent.sample()
    down = agent.comfyui_problem
    clock.advance(30)
    agent.sample()  # down for the grace period: a node without work gives its protection back
    node.restart()  # it comes back with an empty queue and history
    comfyui.start()
    node.run(seconds=5.0)
    node.run(seconds=5.0)
    agent.sample()
    for _ in range(2):  # every period so far closed and published
        clock.advance(60)
        agent.step()

    assert "Connection refused" in down
    assert agent.comfyui_problem is None
    assert not protected(aws, fleet_group)
    assert statistic(aws, "JobCount", "Sum") == [3.0]
