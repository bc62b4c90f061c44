"""The AMI smoke test's rules: which checks a candidate image must pass, how the smoke
document's output is read, and what a failure says.

A candidate image is booted once, in the fleet's private subnets with the fleet's
worker profile, before its pointer moves (EC2 Image Builder's test stage does the same
before distribution). The shared stack's ``bp-ami-smoke-<stage>`` document runs the
checks on it and prints one line per check::

    PASS gpu: NVIDIA A10G, driver 550.54.15
    FAIL comfyui: curl: (7) Failed to connect to 127.0.0.1 port 8188

Every check must print its line and pass; a check that printed nothing failed too (the
script died before it). The instance is always terminated afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpu_worker.layout import NO_ACTIVE_BUNDLE
from include.naming import platform
from include.naming.fleet import Fleet

#: check name -> what it proves, in the order the document runs them
CHECKS: dict[str, str] = {
    "gpu": "nvidia-smi sees a GPU and reports the driver version",
    "cuda": "CUDA is usable from the ComfyUI venv (torch.cuda.is_available)",
    "comfyui": "ComfyUI answers /system_stats",
    "worker": "the worker venv imports gpu_worker (the installer and the node agent), as the agent's user",
    "agent": "the node agent's unit (bp-node-agent) is enabled",
    "owners": "the code and venvs under /opt/comfyui and /opt/worker are root's alone",
    "bundle": "gpu_worker.bundle status reports the baked bundle",
}
#: how long the instance may take to pass its EC2 status checks, and the document to run
STATUS_CHECK_TIMEOUT_SECONDS = 15 * 60
COMMAND_TIMEOUT_SECONDS = 10 * 60

_LINE = re.compile(r"^(?P<verdict>PASS|FAIL) (?P<check>[a-z-]+): ?(?P<detail>.*)$")


def expected_checks(bundle_id: str | None) -> list[str]:
    """Every check, the bundle one only when a bundle was baked in (bake modes)."""
    baked = bundle_id not in (None, "", NO_ACTIVE_BUNDLE)
    return [check for check in CHECKS if check != "bundle" or baked]


def document_parameters(bundle_id: str | None) -> dict[str, list[str]]:
    """The smoke document's one parameter: the bundle the image must report as baked."""
    return {"expectedBundle": [bundle_id or NO_ACTIVE_BUNDLE]}


def instance_tags(fleet: Fleet, image_id: str, dag_id: str, run_id: str) -> dict[str, str]:
    """A smoke instance says what it is, for which run: the guardrails find a leftover one
    by these tags and terminate it once that run has ended."""
    return {
        "Name": f"bp-ami-smoke-{fleet.stage}-{fleet.slug}",
        platform.ROLE_TAG: platform.AMI_SMOKE_ROLE,
        **fleet.tags,
        "smoke_test_of": image_id,
        "airflow_dag_id": dag_id,
        "airflow_run_id": run_id,
    }


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.check}: {self.detail}"


@dataclass(frozen=True)
class SmokeVerdict:
    image_id: str
    instance_id: str
    status: str  # the Run Command invocation's Status
    results: tuple[CheckResult, ...]
    stdout: str
    stderr: str

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(result for result in self.results if not result.passed)

    @property
    def passed(self) -> bool:
        return not self.failed and self.status == "Success"

    def summary(self) -> str:
        """One paragraph: which checks passed, or which failed and what they printed."""
        if self.passed:
            return (
                f"AMI {self.image_id} passed its smoke test on {self.instance_id}: "
                + "; ".join(result.line() for result in self.results)
                + "."
            )
        failed = self.failed or (CheckResult("document", False, f"Run Command ended {self.status}"),)
        said = "; ".join(f"{result.check} ({result.detail or 'no output'})" for result in failed)
        tail = f" stderr: {self.stderr.strip()[-300:]}" if self.stderr.strip() else ""
        return f"AMI {self.image_id} failed its smoke test on {self.instance_id}: {said}.{tail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "instance_id": self.instance_id,
            "status": self.status,
            "passed": self.passed,
            "checks": [{"check": r.check, "passed": r.passed, "detail": r.detail} for r in self.results],
            "stdout": self.stdout,
            "stderr": self.stderr,
        }


def judge(image_id: str, instance_id: str, invocation: Mapping[str, Any], expected: list[str]) -> SmokeVerdict:
    """Read GetCommandInvocation's answer: each expected check must have printed PASS."""
    stdout = str(invocation.get("StandardOutputContent") or "")
    said: dict[str, CheckResult] = {}
    for line in stdout.splitlines():
        match = _LINE.match(line.strip())
        if match and match["check"] not in said:
            said[match["check"]] = CheckResult(match["check"], match["verdict"] == "PASS", match["detail"].strip())
    results = tuple(said.get(check) or CheckResult(check, False, "printed no result") for check in expected)
    return SmokeVerdict(
        image_id=image_id,
        instance_id=instance_id,
        status=str(invocation.get("Status") or "Unknown"),
        results=results,
        stdout=stdout,
        stderr=str(invocation.get("StandardErrorContent") or ""),
    )
