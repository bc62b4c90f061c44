"""What the node agent costs a GPU node: its CPU (percent of one core) and peak memory
watching a ComfyUI that finishes one prompt a second, and its PutMetricData calls per
node-hour with what they cost a month.

The agent runs as on a node - ``python -m gpu_worker.agent --env-file <worker.env>`` in
a process of its own, with its shipped settings (a look every 5 s, a publish every 60 s)
- against the ComfyUI double (real HTTP, a small SDXL workflow per prompt, 0 to 10 000
prompts of history), the IMDSv2 double and a moto server standing in for CloudWatch.
Its CPU is the kernel's account of the process (``/proc/<pid>/stat``, start-up and boto3's
import included), its peak memory ``VmHWM``. Budget: under 1 % of a core, under 80 MB,
at most 60 calls per node-hour.

Run: ``.venv/bin/python bench/node_agent.py [--minutes 10] [--rate 1.0]``
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.stack import free_port
from include.tables import format_table
from tests.doubles.comfyui import HEALTHY as BEHAVIOUR
from tests.doubles.comfyui import ComfyUIServer, replace
from tests.doubles.imds import MetadataServer
from tests.gpu_worker.conftest import one_node_group

GROUP = "asg-staging-bench"
#: CloudWatch's list prices (us-east-1): API requests and custom metrics
DOLLARS_PER_1000_REQUESTS = 0.01
HOURS_PER_MONTH = 730


def _proc(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and peak resident memory (bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = next(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )
    return cpu, peak


#: moto's request recorder counts the agent's calls as the emulator received them
RECORDING = Path(tempfile.mkdtemp(prefix="bp-bench-agent-calls-")) / "requests.jsonl"


def run(minutes: float, rate: float) -> dict[str, float]:
    # read when moto is first imported
    os.environ.update({"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(RECORDING)})
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})  # the emulator takes any
    import boto3
    from moto.server import ThreadedMotoServer

    from devstack import emulator

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's request log
    emulator.install()
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"

    def client(service: str):
        return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")

    instance = one_node_group(client, GROUP)
    comfyui, metadata = ComfyUIServer(), MetadataServer()
    node = comfyui.node(instance)
    node.behaviour = replace(BEHAVIOUR, prompts_per_second=rate)
    work = Path(tempfile.mkdtemp(prefix="bp-bench-agent-"))
    env_file = work / "worker.env"
    env_file.write_text(
        "\n".join(
            [
                "BP_FLEET_STAGE=staging",
                "BP_FLEET_SLUG=bench",
                f"BP_AUTO_SCALING_GROUP={GROUP}",
                f"BP_COMFYUI_URL={comfyui.url(instance)}",
                f"BP_BUNDLE_STATE_DIR={work}",
                "AWS_REGION=us-east-1",
            ]
        )
        + "\n"
    )
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,  # every SDK client of the agent's goes to the emulator
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata.add(instance),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    agent = subprocess.Popen(
        [sys.executable, "-m", "gpu_worker.agent", "--env-file", str(env_file)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        while time.monotonic() - started < minutes * 60:
            node.drive()
            time.sleep(0.2)
        cpu, peak = _proc(agent.pid)
        elapsed = time.monotonic() - started
        calls = put_metric_data_calls()  # before the stop's own last publish
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    cloudwatch = client("cloudwatch")
    jobs = sum(
        point["Sum"]
        for point in cloudwatch.get_metric_statistics(
            Namespace="ComfyUI/Workers",
            MetricName="JobCount",
            Dimensions=[{"Name": "Stage", "Value": "staging"}, {"Name": "FleetSlug", "Value": "bench"}],
            StartTime=time.time() - elapsed - 120,
            EndTime=time.time() + 120,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
    )
    moto.stop()
    comfyui.stop()
    metadata.stop()
    calls_per_hour = calls * 3600 / elapsed
    return {
        "minutes": elapsed / 60,
        "prompts": node.driven,
        "jobs published": jobs,  # the minute under way goes out at the stop, after this
        "cpu percent": 100 * cpu / elapsed,
        "peak MB": peak / 1e6,
        "calls per node-hour": calls_per_hour,
        "dollars per node-month": calls_per_hour * HOURS_PER_MONTH * DOLLARS_PER_1000_REQUESTS / 1000,
    }


def put_metric_data_calls() -> int:
    """PutMetricData requests in moto's recording (query protocol: ``Action=`` in the body;
    JSON and CBOR protocols: the ``X-Amz-Target`` header)."""
    calls = 0
    for line in RECORDING.read_text().splitlines() if RECORDING.exists() else []:
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        target = {k.lower(): v for k, v in entry.get("headers", {}).items()}.get("x-amz-target", "")
        calls += "Action=PutMetricData" in body or target.endswith("PutMetricData")
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1.0, help="prompts a second")
    args = parser.parse_args()
    figures = run(args.minutes, args.rate)
    budget = {"cpu percent": 1.0, "peak MB": 80.0, "calls per node-hour": 60.0}
    rows = [
        (
            name,
            f"{value:.3f}" if isinstance(value, float) else str(value),
            f"<= {budget[name]:g}" if name in budget else "",
        )
        for name, value in figures.items()
    ]
    print(format_table(("figure", "value", "budget"), rows))
    over = [name for name, limit in budget.items() if figures[name] > limit]
    if over:
        print(f"over budget: {', '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
