"""Packer's ``-machine-readable`` output: ``timestamp,target,type,data...`` per line,
with commas inside data written as ``%!(PACKER_COMMA)``.

The AMI comes from the ``artifact`` lines (``<n>,id,<region>:<ami>[,<region>:<ami>]``)
or from the manifest post-processor's JSON (``builds[-1].artifact_id``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

COMMA = "%!(PACKER_COMMA)"


@dataclass(frozen=True)
class Line:
    timestamp: str
    target: str
    type: str
    data: tuple[str, ...]

    def human(self) -> str:
        """What a person wants in the task log for this line."""
        if self.type == "ui" and len(self.data) >= 2:
            return f"[{self.data[0]}] {self.data[1]}"
        prefix = f"{self.target}: " if self.target else ""
        return f"{prefix}{self.type} {' '.join(self.data)}".rstrip()


def parse_line(raw: str) -> Line | None:
    """A machine-readable line, or None for anything else (plain text Packer prints)."""
    parts = raw.rstrip("\n").split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    data = tuple(part.replace(COMMA, ",").replace("\\n", "\n") for part in parts[3:])
    return Line(parts[0], parts[1], parts[2], data)


def artifact_ids(lines: list[Line]) -> list[str]:
    """Every ``artifact <n> id <value>`` value, in order."""
    return [line.data[2] for line in lines if line.type == "artifact" and len(line.data) >= 3 and line.data[1] == "id"]


def ami_for_region(artifact_id: str, region: str | None = None) -> str:
    """``us-east-1:ami-1,eu-west-1:ami-2`` -> the AMI of ``region`` (the first when None)."""
    pairs = [item.split(":", 1) for item in artifact_id.split(",") if ":" in item]
    for pair_region, ami in pairs:
        if region is None or pair_region == region:
            return ami
    raise ValueError(f"no AMI for region {region!r} in artifact {artifact_id!r}")


def manifest_artifact_id(manifest: Path) -> str:
    """The last build's artifact id from a manifest post-processor file."""
    builds = json.loads(manifest.read_text())["builds"]
    if not builds:
        raise ValueError(f"{manifest} lists no build")
    return builds[-1]["artifact_id"]
