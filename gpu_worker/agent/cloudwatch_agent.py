"""The CloudWatch agent's configuration on a GPU node, generated at boot from
``/etc/bp/worker.env`` (``python -m gpu_worker.agent cloudwatch-agent-config``) and loaded
with ``amazon-cloudwatch-agent-ctl -a fetch-config``; the agent itself is baked by Packer.

* A **fleet node** ships its logs - ComfyUI's, the bundle installer's and the node
  agent's - to the fleet's log group (``BP_LOG_GROUP``, ``/gpu-workers/<stage>/<slug>``,
  whose retention the fleet stack sets), one stream per instance and file. It publishes
  no per-instance metric: Spot nodes come and go, and every new ``InstanceId`` would be
  new custom metrics on the bill; the node agent's fleet figures cover the fleet.
* A **dev node** publishes its GPU as ``CWAgent nvidia_smi_*`` by ``InstanceId`` (what
  ``gpu_dev_node_idle_stop`` reads) and its memory and root disk use.
"""

from __future__ import annotations

from typing import Any

#: file on the node -> the stream's suffix (streams are ``<instance id>/<suffix>``)
LOG_FILES = {
    "/var/log/comfyui/comfyui.log": "comfyui",
    "/var/log/comfyui-asset-sync.log": "bundle-installer",
    "/var/log/bp-agent/agent.log": "node-agent",
}
#: what the agent's nvidia_gpu plugin measures; published as ``nvidia_smi_<measurement>``
GPU_MEASUREMENTS = ("utilization_gpu", "utilization_memory", "memory_used", "memory_total", "temperature_gpu")
METRICS_NAMESPACE = "CWAgent"
INTERVAL_SECONDS = 60


def config(env: dict[str, str]) -> dict[str, Any]:
    """The agent's JSON configuration for the node ``env`` describes."""
    document: dict[str, Any] = {"agent": {"metrics_collection_interval": INTERVAL_SECONDS, "run_as_user": "cwagent"}}
    if env.get("BP_DEVNODE_NAME"):
        document["metrics"] = {
            "namespace": METRICS_NAMESPACE,
            "append_dimensions": {"InstanceId": "${aws:InstanceId}"},
            "aggregation_dimensions": [["InstanceId"]],
            "metrics_collected": {
                "nvidia_gpu": {"measurement": list(GPU_MEASUREMENTS)},
                "mem": {"measurement": ["mem_used_percent"]},
                "disk": {"measurement": ["used_percent"], "resources": ["/"], "drop_device": True},
            },
        }
        return document
    group = env.get("BP_LOG_GROUP")
    if not group:
        raise ValueError("BP_LOG_GROUP is not set: a fleet node ships its logs to its fleet's log group")
    document["logs"] = {
        "logs_collected": {
            "files": {
                "collect_list": [
                    {
                        "file_path": path,
                        "log_group_name": group,
                        "log_stream_name": f"{{instance_id}}/{suffix}",
                        "timezone": "UTC",
                    }
                    for path, suffix in LOG_FILES.items()
                ]
            }
        }
    }
    return document
