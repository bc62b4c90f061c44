"""The metric contract of the ``ComfyUI/Workers`` namespace: every metric in it, who
publishes it, the statistic its readers take, its unit and its dimensions.

ADR-0005 put the fleet's metrics in one namespace with the dimensions ``Stage`` and
``FleetSlug``; seed 000 splits who publishes them. What only a node can know - the jobs
it ran, how long they took, how many failed, its GPU - is published by the node agent
(:mod:`gpu_worker.agent`) next to ComfyUI; what only the queue knows (depth, backlog,
workers, leases) by the platform's backend (``workers:publish-metrics``).

This module is the one place the contract is written. The README's table is generated
from it (``tests/test_metric_contract.py`` compares them), and the readers are checked
against it there: the rollout verdicts, the guardrails, the fleet stack's alarms, the
dashboards and alert rules, dev-node idle stop.

Two ideas make the node's figures add up across nodes in CloudWatch itself:

* ``ErrorRate`` is published as a distribution of one sample per job, 0 (it succeeded)
  or 100 (it failed): its ``Average`` over any set of nodes and minutes is the share of
  failed jobs, weighted by jobs, never an average of the nodes' rates.
* ``JobProcessingTime`` is the distribution of job durations (``Values``/``Counts``), so
  CloudWatch computes ``p50``/``p90`` over every job of every node in a window; the
  verdicts read its ``p50``. ``JobProcessingP50`` (each node's median of the minute)
  stays for the dashboards: Telegraf's CloudWatch input reads no percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "ComfyUI/Workers"

NODE_AGENT, BACKEND = "node agent", "backend"

#: A fleet node publishes each metric twice: for the fleet, and for the fleet's nodes
#: running one bundle (the canary's view of a rollout).
FLEET_DIMENSIONS = ("Stage", "FleetSlug")
BUNDLE_DIMENSIONS = ("Stage", "FleetSlug", "BundleId")
#: A dev node is in no fleet: its figures are its own (gpu_dev_node_idle_stop reads them).
DEV_NODE_DIMENSIONS = ("InstanceId",)


@dataclass(frozen=True)
class Metric:
    name: str
    publisher: str
    statistics: tuple[str, ...]
    unit: str
    dimensions: tuple[tuple[str, ...], ...]
    meaning: str


_NODE = (FLEET_DIMENSIONS, BUNDLE_DIMENSIONS, DEV_NODE_DIMENSIONS)
_QUEUE = (FLEET_DIMENSIONS,)
#: only a fleet node leaves through its group (a dev node is stopped by its own DAG)
_LEAVING = (FLEET_DIMENSIONS, BUNDLE_DIMENSIONS)

CONTRACT: tuple[Metric, ...] = (
    Metric("JobCount", NODE_AGENT, ("Sum",), "Count", _NODE, "prompts that finished (succeeded or failed)"),
    Metric(
        "ErrorRate",
        NODE_AGENT,
        ("Average",),
        "Percent",
        _NODE,
        "one sample per finished prompt, 100 if it failed and 0 if not: the Average is the share that failed",
    ),
    Metric(
        "JobProcessingTime",
        NODE_AGENT,
        ("p50", "p90", "SampleCount"),
        "Seconds",
        _NODE,
        "the distribution of prompt durations (execution start to end), every prompt a sample",
    ),
    Metric(
        "JobProcessingP50",
        NODE_AGENT,
        ("Average",),
        "Seconds",
        _NODE,
        "each node's median duration of the minute (for Telegraf, which reads no percentiles)",
    ),
    Metric("GPUUtilization", NODE_AGENT, ("Average", "Maximum"), "Percent", _NODE, "GPU busy time (NVML)"),
    Metric("GPUMemoryUtilization", NODE_AGENT, ("Average", "Maximum"), "Percent", _NODE, "GPU memory in use (NVML)"),
    Metric("QueueDepth", BACKEND, ("Maximum", "Minimum", "Average"), "Count", _QUEUE, "jobs queued or running"),
    Metric("BacklogPerInstance", BACKEND, ("Average",), "Count", _QUEUE, "QueueDepth / ActiveWorkers"),
    Metric("ActiveWorkers", BACKEND, ("Maximum", "Average"), "Count", _QUEUE, "workers holding a lease"),
    Metric("AvailableCapacity", BACKEND, ("Average",), "Count", _QUEUE, "workers free to take a job"),
    Metric("LeaseExpiredCount", BACKEND, ("Sum",), "Count", _QUEUE, "jobs whose lease ran out (a worker died or hung)"),
    Metric(
        "SpotInterruptionCount", NODE_AGENT, ("Sum",), "Count", _LEAVING, "Spot interruption notices the nodes received"
    ),
    Metric(
        "DrainSeconds",
        NODE_AGENT,
        ("Maximum", "Average", "SampleCount"),
        "Seconds",
        _LEAVING,
        "how long a leaving node waited for its prompts before it went (one sample per node that left)",
    ),
    Metric(
        "DrainAbandonedJobs",
        NODE_AGENT,
        ("Sum",),
        "Count",
        _LEAVING,
        "prompts still running or queued when a leaving node's drain deadline came: they ended with it",
    ),
)
BY_NAME = {metric.name: metric for metric in CONTRACT}


def metric(name: str) -> Metric:
    """The contract's metric ``name``; a KeyError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the {NAMESPACE} contract ({', '.join(BY_NAME)})") from None


def markdown_table() -> str:
    """The contract as the README shows it."""
    lines = [
        "| metric | publisher | statistic | unit | dimensions | what it is |",
        "|---|---|---|---|---|---|",
    ]
    for m in CONTRACT:
        dimensions = " · ".join("+".join(d) for d in m.dimensions)
        lines.append(
            f"| `{m.name}` | {m.publisher} | {', '.join(m.statistics)} | {m.unit} | {dimensions} | {m.meaning} |"
        )
    return "\n".join(lines)
