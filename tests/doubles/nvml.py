"""A stand-in for NVIDIA's NVML library (``pynvml`` from ``nvidia-ml-py``), which needs a
driver and a GPU: the calls the node agent's reader makes, answering for one A10G whose
use a test (or the emulated fleet) sets."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

TOTAL_MEMORY = 24 * 1024**3


@dataclass
class FakeNvml:
    """``utilization`` and ``memory_used`` are what the GPU reports now."""

    utilization: float = 0.0
    memory_used: int = 1024**3
    name: str = "NVIDIA A10G"
    initialised: int = 0

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self.utilization, memory=self.utilization / 2)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=TOTAL_MEMORY, used=self.memory_used, free=TOTAL_MEMORY - self.memory_used)

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.name
