"""What draining adds to an instance refresh, and what it saves: a refresh of N nodes, each
running prompts of L seconds one after the other, with the fleet's termination hook (every
replaced node finishes its prompt first) and without it (the node goes at once, its prompt
killed), side by side.

The emulated fleet of the local stack (tests/doubles/fleet_nodes.py: each node's real
agent, its ComfyUI double) against a moto server thread with the emulator's termination
hooks; the refresh is stepped as a poller would read it, every 2 s (``--poll``). A prompt
killed is one running on a node when it was terminated (the hook-less refresh), or left at
a drain deadline (the drained one; the hook here allows 120 s).

Run: ``.venv/bin/python bench/node_drain.py [--nodes 4] [--prompt-seconds 6 20]``. The
refresh replaces one node at a time (MinHealthyPercentage 50); every node's prompts start
together, so each replaced node waits close to a whole prompt: the worst case.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack import emulator
from devstack.emulator import lifecycle
from devstack.stack import free_port
from include.tables import format_table

GROUP = "asg-staging-bench-drain"
STAGE, SLUG = "staging", "bench-drain"


def _fleet(client, nodes: int, prompt_seconds: float, hooked: bool) -> None:
    ec2, autoscaling = client("ec2"), client("autoscaling")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"lt-{GROUP}-{time.monotonic_ns()}",
        LaunchTemplateData={"ImageId": image, "InstanceType": "g5.xlarge"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=0,
        MaxSize=nodes * 2,
        DesiredCapacity=nodes,
        AvailabilityZones=["us-east-1a"],
        Tags=[
            {"Key": "stage", "Value": STAGE, "PropagateAtLaunch": True},
            {"Key": "fleet", "Value": SLUG, "PropagateAtLaunch": True},
            {"Key": "emulator:prompt-seconds", "Value": str(prompt_seconds), "PropagateAtLaunch": False},
        ],
    )
    if hooked:
        autoscaling.put_lifecycle_hook(
            LifecycleHookName="bp-drain",
            AutoScalingGroupName=GROUP,
            LifecycleTransition=lifecycle.TERMINATING,
            HeartbeatTimeout=180,  # the agent's drain timeout: 120 s
            DefaultResult="CONTINUE",
        )


def _running(fleet) -> dict[str, bool]:
    """Node -> whether a prompt runs on it now."""
    return {instance_id: node.comfyui.running is not None for instance_id, node in fleet.nodes.items()}


def one_refresh(endpoint: str, client, nodes: int, prompt_seconds: float, hooked: bool, poll: float) -> dict:
    from tests.doubles.fleet_nodes import EmulatedFleet

    _fleet(client, nodes, prompt_seconds, hooked)
    fleet = EmulatedFleet(endpoint)
    try:
        fleet.tick()
        time.sleep(1.0)
        fleet.tick()  # every node has a prompt running
        autoscaling = client("autoscaling")
        started = time.monotonic()
        refresh = autoscaling.start_instance_refresh(
            AutoScalingGroupName=GROUP, Preferences={"ScaleInProtectedInstances": "Refresh", "MinHealthyPercentage": 50}
        )["InstanceRefreshId"]
        killed = 0
        while True:
            before = _running(fleet)
            [found] = autoscaling.describe_instance_refreshes(AutoScalingGroupName=GROUP, InstanceRefreshIds=[refresh])[
                "InstanceRefreshes"
            ]
            gone = set(before) - {
                i["InstanceId"] for i in autoscaling.describe_auto_scaling_instances()["AutoScalingInstances"]
            }
            killed += sum(1 for instance_id in gone if before[instance_id] and not hooked)
            if found["Status"] not in ("Pending", "InProgress"):
                break
            fleet.tick()
            time.sleep(poll)
        took = time.monotonic() - started
        fleet.tick()
        return {"seconds": took, "killed": killed + fleet.totals["abandoned_jobs"], "drains": fleet.totals["drains"]}
    finally:
        fleet.stop()
        autoscaling = client("autoscaling")
        autoscaling.delete_auto_scaling_group(AutoScalingGroupName=GROUP, ForceDelete=True)
        for hook in autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=GROUP).get("LifecycleHooks", []):
            autoscaling.delete_lifecycle_hook(LifecycleHookName=hook["LifecycleHookName"], AutoScalingGroupName=GROUP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--prompt-seconds", type=float, nargs="+", default=[6.0, 20.0])
    parser.add_argument("--poll", type=float, default=2.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    import boto3
    from moto.server import ThreadedMotoServer

    emulator.install()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    endpoint = f"http://127.0.0.1:{port}"

    def client(service: str):
        return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")

    rows = []
    try:
        for prompt_seconds in args.prompt_seconds:
            plain = one_refresh(endpoint, client, args.nodes, prompt_seconds, hooked=False, poll=args.poll)
            drained = one_refresh(endpoint, client, args.nodes, prompt_seconds, hooked=True, poll=args.poll)
            rows.append(
                [
                    f"{args.nodes} x {prompt_seconds:g} s",
                    f"{plain['seconds']:.0f}",
                    f"{drained['seconds']:.0f}",
                    f"+{drained['seconds'] - plain['seconds']:.0f}",
                    str(plain["killed"]),
                    str(drained["killed"]),
                    str(drained["drains"]),
                ]
            )
    finally:
        server.stop()
    header = ["NODES x PROMPT", "refresh (s)", "drained (s)", "added (s)", "killed", "killed drained", "drains"]
    print(format_table(header, rows))


if __name__ == "__main__":
    main()
