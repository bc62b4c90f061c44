"""The node's GPUs through NVML (NVIDIA's own bindings, ``nvidia-ml-py``: the library
``nvidia-smi`` is built on), read in-process: no subprocess a minute, no parsing.

A node without a driver (or a machine without a GPU) has no reading: the agent then
publishes no GPU metric, says so once in its log, and everything else goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger("bp.agent.gpu")


@dataclass(frozen=True)
class GpuReading:
    """The node's GPUs together: utilisation and memory in use, in percent (the mean over
    the GPUs of a multi-GPU node), and what they are."""

    utilization_percent: float
    memory_percent: float
    devices: tuple[str, ...]


class Gpus:
    """NVML, initialised once; :meth:`read` answers None when there is no GPU to read."""

    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        self._nvml = nvml
        self._handles: list[Any] | None = None
        self.problem: str | None = None

    def _open(self) -> list[Any]:
        if self._handles is None:
            nvml = self._nvml
            if nvml is None:
                import pynvml as nvml  # nvidia-ml-py

                self._nvml = nvml
            nvml.nvmlInit()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        return self._handles

    def read(self) -> GpuReading | None:
        if self.problem is not None:
            return None
        try:
            handles = self._open()
            if not handles:
                raise RuntimeError("NVML found no GPU")
            nvml = self._nvml
            utilization = [nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles]
            memory = [nvml.nvmlDeviceGetMemoryInfo(h) for h in handles]
            names = tuple(_text(nvml.nvmlDeviceGetName(h)) for h in handles)
        except Exception as error:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded, ...
            if self._handles is None:  # NVML never opened: no GPU here, for good
                self.problem = f"{type(error).__name__}: {error}"
                log.warning("no GPU metrics on this node: %s", self.problem)
            else:  # one reading failed (an Xid, a reset): the next one may not
                log.warning("GPU reading failed: %s: %s", type(error).__name__, error)
            return None
        return GpuReading(
            utilization_percent=sum(utilization) / len(utilization),
            memory_percent=100.0 * sum(m.used for m in memory) / max(1, sum(m.total for m in memory)),
            devices=names,
        )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
