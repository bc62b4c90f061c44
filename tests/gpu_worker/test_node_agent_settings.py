"""The node agent's GPU reader, its instance metadata, its settings, a dev node's
heartbeat and the CloudWatch agent's configuration it generates."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gpu_worker.agent import cloudwatch_agent
from gpu_worker.agent.__main__ import main as agent_main
from gpu_worker.agent.__main__ import read_env_file
from gpu_worker.agent.gpu import Gpus
from gpu_worker.agent.imds import InstanceMetadata
from gpu_worker.agent.node import Agent, AgentConfig, agent_from_env
from gpu_worker.agent.publisher import Publisher, put_batches
from tests.doubles.imds import MetadataServer
from tests.doubles.nvml import FakeNvml
from tests.gpu_worker.conftest import FLEET, GROUP, Clock, statistic

# --- the GPU, the instance, the settings ---------------------------------------------------


def test_the_gpu_reader_reads_nvml_and_reports_no_gpu_where_there_is_no_driver():
    nvml = FakeNvml(utilization=42.0, memory_used=6 * 1024**3)

    reading = Gpus(nvml).read()
    absent = Gpus()  # the real nvidia-ml-py, on a machine without an NVIDIA driver

    assert (reading.utilization_percent, reading.memory_percent, reading.devices) == (42.0, 25.0, ("NVIDIA A10G",))
    assert absent.read() is None
    assert "NVML" in absent.problem or "nvml" in absent.problem.lower()


def test_the_agent_reads_its_instance_through_imdsv2_tokens():
    server = MetadataServer()
    try:
        metadata = InstanceMetadata(server.add("i-0abc"))
        first = metadata.instance_id()
        server.expire_tokens()  # a token that expired is fetched again
        assert (first, metadata.instance_id(), metadata.region()) == ("i-0abc", "i-0abc", "us-east-1")
    finally:
        server.stop()


def test_a_node_built_from_its_env_file_publishes_as_itself(comfyui, fleet_group, tmp_path):
    server = MetadataServer()
    env_file = tmp_path / "worker.env"
    env_file.write_text(
        "BP_FLEET_STAGE=staging\nBP_FLEET_SLUG=gpu-default\n"
        f"BP_AUTO_SCALING_GROUP={GROUP}\nAWS_REGION=us-east-1\n"
        f"BP_COMFYUI_URL={comfyui.url(fleet_group)}\nBP_BUNDLE_STATE_DIR={tmp_path}\n"
    )
    try:
        agent = agent_from_env(read_env_file(env_file), InstanceMetadata(server.add(fleet_group)))
    finally:
        server.stop()

    assert agent.instance_id == fleet_group
    assert agent.dimension_sets()[1][-1] == {"Name": "BundleId", "Value": "none"}


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"BP_FLEET_SLUG": "gpu-default"}, "BP_FLEET_STAGE is not set"),
        ({"BP_FLEET_STAGE": "staging"}, "exactly one"),
        ({"BP_FLEET_STAGE": "staging", "BP_FLEET_SLUG": "a", "BP_DEVNODE_NAME": "b"}, "exactly one"),
        ({"BP_FLEET_STAGE": "staging", "BP_FLEET_SLUG": "a"}, "BP_AUTO_SCALING_GROUP"),
        ({"BP_FLEET_STAGE": "staging", "BP_DEVNODE_NAME": "b"}, "BP_HEARTBEAT_PARAMETER"),
        (
            {
                "BP_FLEET_STAGE": "staging",
                "BP_DEVNODE_NAME": "b",
                "BP_HEARTBEAT_PARAMETER": "/p",
                "BP_AGENT_POLL_SECONDS": "5s",
            },
            "BP_AGENT_POLL_SECONDS must be a number of seconds, got '5s'",
        ),
    ],
)
def test_settings_that_name_no_node_are_refused_in_one_line(tmp_path, capsys, env, problem):
    env_file = tmp_path / "worker.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))

    assert agent_main(["check", "--env-file", str(env_file)]) == 2
    assert problem in capsys.readouterr().err


def test_a_dev_node_publishes_by_instance_and_heartbeats_at_a_bounded_rate(comfyui, aws, tmp_path):
    clock = Clock(ago=15 * 60)
    parameter = "/bp/devnodes/staging/alice/last_heartbeat"
    config = AgentConfig(
        stage="staging",
        dev_node="alice",
        heartbeat_parameter=parameter,
        comfyui_url=comfyui.url("i-dev"),
        bundle_state_dir=tmp_path,
        heartbeat_seconds=300,
    )
    agent = Agent(config, instance_id="i-dev", client=aws, gpus=Gpus(FakeNvml(utilization=0.0)), clock=clock)
    started = clock.now
    node = comfyui.node("i-dev")
    beats = []
    for minute in range(10):
        if minute < 8:
            node.run(seconds=3.0)
        agent.sample()
        clock.advance(60)
        agent.step()
        beats.append(agent.heartbeat.writes)

    assert beats == [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]  # at most one write in 5 minutes; none once idle
    written = aws("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    assert datetime.fromisoformat(written) == datetime.fromtimestamp(int(started + 6 * 60), UTC)  # the 6th minute
    assert statistic(aws, "JobCount", "Sum", [{"Name": "InstanceId", "Value": "i-dev"}]) == [8.0]
    assert statistic(aws, "JobCount", "Sum") == []  # never in a fleet's figures


def test_put_batches_splits_at_putmetricdatas_limits(aws):
    datums = [{"MetricName": "JobCount", "Value": 1.0, "Dimensions": FLEET, "Timestamp": datetime.now(UTC)}] * 2500

    assert put_batches(aws("cloudwatch"), datums) == 3
    publisher = Publisher(aws("cloudwatch"))
    publisher.add(datums[:1500])
    with publisher._calling:  # a call still out (the publishing thread's): the stop's waits its turn
        assert not publisher.publish()
    assert publisher.pending == 1500
    assert publisher.publish()
    assert publisher.pending == 500


# --- the CloudWatch agent's configuration -------------------------------------------------


def test_a_fleet_node_ships_its_three_logs_to_its_fleets_group():
    config = cloudwatch_agent.config({"BP_LOG_GROUP": "/gpu-workers/staging/gpu-default"})

    files = config["logs"]["logs_collected"]["files"]["collect_list"]
    assert {f["file_path"] for f in files} == set(cloudwatch_agent.LOG_FILES)
    assert {f["log_group_name"] for f in files} == {"/gpu-workers/staging/gpu-default"}
    assert all(f["log_stream_name"].startswith("{instance_id}/") for f in files)
    assert "metrics" not in config  # no per-instance custom metrics for Spot nodes
    with pytest.raises(ValueError, match="BP_LOG_GROUP"):
        cloudwatch_agent.config({})


def test_a_dev_node_publishes_what_idle_stop_reads(tmp_path):
    from include.devnodes import usage

    env_file = tmp_path / "worker.env"
    env_file.write_text("BP_FLEET_STAGE=staging\nBP_DEVNODE_NAME=alice\n")
    out = tmp_path / "amazon-cloudwatch-agent.json"

    assert agent_main(["cloudwatch-agent-config", "--env-file", str(env_file), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    published = {
        (metrics["namespace"], f"nvidia_smi_{m}") for m in metrics["metrics_collected"]["nvidia_gpu"]["measurement"]
    }
    assert metrics["append_dimensions"] == {"InstanceId": "${aws:InstanceId}"}
    read = {(namespace, metric) for namespace, metric, *_ in usage.ACTIVITY_METRICS if namespace == "CWAgent"}
    assert read
    assert read <= published
