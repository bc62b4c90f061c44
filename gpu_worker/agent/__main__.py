"""``python -m gpu_worker.agent``: run the node agent (the ``bp-node-agent`` unit).

    python -m gpu_worker.agent [--env-file /etc/bp/worker.env]
    python -m gpu_worker.agent check [--env-file ...]     one look, printed as JSON
    python -m gpu_worker.agent cloudwatch-agent-config --out FILE [--env-file ...]

The node's identity comes from the env file the launch template's user-data wrote and
from the instance metadata (IMDSv2); AWS credentials and region from the instance's
role, as every SDK finds them. SIGTERM stops it cleanly: the period so far published,
scale-in protection cleared.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from gpu_worker.agent import cloudwatch_agent
from gpu_worker.agent.imds import InstanceMetadata
from gpu_worker.agent.node import Agent, agent_from_env

DEFAULT_ENV_FILE = "/etc/bp/worker.env"


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (systemd's EnvironmentFile subset the user-data writes)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"')
    return values


def _agent(env: dict[str, str]) -> Agent:
    return agent_from_env(env, InstanceMetadata())


def _run(env: dict[str, str]) -> int:
    agent = _agent(env)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent.run(stop)
    return 0


def _check(env: dict[str, str]) -> int:
    agent = _agent(env)
    agent.sample()
    reading = agent.period.gpu[-1] if agent.period.gpu else None  # what that look read
    print(
        json.dumps(
            {
                "instance_id": agent.instance_id,
                "dimensions": agent.dimension_sets(),
                "comfyui": agent.comfyui_problem or "answers",
                "gpu": None if reading is None else reading.__dict__,
                "gpu_problem": agent.gpus.problem,
            },
            indent=2,
            default=list,
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpu_worker.agent", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="run", choices=("run", "check", "cloudwatch-agent-config"))
    parser.add_argument("--env-file", default=DEFAULT_ENV_FILE)
    parser.add_argument("--out", help="where cloudwatch-agent-config writes the configuration")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        env = read_env_file(Path(args.env_file))
        if args.command == "cloudwatch-agent-config":
            if not args.out:
                parser.error("cloudwatch-agent-config needs --out FILE")
            Path(args.out).write_text(json.dumps(cloudwatch_agent.config(env), indent=2) + "\n")
            return 0
        return _check(env) if args.command == "check" else _run(env)
    except (OSError, ValueError) as error:  # a missing env file, a bad setting: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
