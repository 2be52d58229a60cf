"""Devices as backends, chosen once by name and probed: ``cpu``, ``cuda[:N]`` and ``dlp-sim``.

A :class:`Backend` is what the pipeline knows of a device: it moves (and for dlp-sim calibrates) the network,
builds each stage's :class:`~stylize.objective.Objective`, says whether it has a fused fast path, runs
deterministically where it can, and hands back its profile. Device-specific code stays in the backend's own
module; the dlp-sim backend lives in :mod:`stylize.dlp.backend` and is imported only when asked for by name.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import Config
from .errors import StylizeError
from .objective import FusedObjective, Objective, PlainObjective
from .tiled import TiledObjective

# Backends by name; a module path is imported on first use (dlp-sim registers a torch device when imported).
BACKENDS = {"cpu": "TorchBackend", "cuda": "TorchBackend", "dlp-sim": "stylize.dlp.backend:DlpBackend"}


class Backend:
    """A device as the pipeline sees it. Subclasses override what differs."""

    device: torch.device
    fast_path = False  # a fused evaluator (its own kernels, buffers reused) that runs unless `exact: true`
    out_of_memory: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError,)
    profile: Any = None  # a device profile with .table() and .as_dict() (dlp-sim), else None

    @property
    def name(self) -> str:
        """What run.json and bench record: ``cpu``, ``cuda:0``, ``dlp-sim``."""
        return str(self.device)

    def describe(self) -> str:
        return self.name

    def available_memory(self) -> int | None:
        """Bytes free for a run on this device, or None when unknown."""
        return available_memory(self.device)

    def prepare(self, net: nn.Module, qparams: dict | None = None) -> nn.Module:
        """The network on this device, in eval mode (``qparams``: an int8 artefact's calibrated scales)."""
        return net.to(self.device).eval()

    def objective(self, net: nn.Module, content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: Config,
                  regions=None, tile: int | None = None) -> Objective:
        """The objective of one stage: the fused fast path unless ``exact``, else the seed's graph; ``regions``
        (a stage's :class:`~stylize.regions.StageRegions`) makes the style losses guided Gram losses on either;
        ``tile`` (the memory plan's): the same, evaluated tile by tile (:class:`~stylize.tiled.TiledObjective`)."""
        if tile is not None:
            return TiledObjective.build(net, content, styles, cfg, tile, fast=self.fast_path and not cfg.exact,
                                        regions=regions)
        if self.fast_path and not cfg.exact:
            return FusedObjective.build(net, content, styles, cfg, regions=regions)
        return PlainObjective.build(net, content, styles, cfg, regions=regions)

    def deterministic(self) -> contextlib.AbstractContextManager:
        """Deterministic algorithms while the run optimizes, where the device has them."""
        return contextlib.nullcontext()

    def simulated_seconds(self) -> float | None:
        """A simulator's device time so far, or None for a real device."""
        return None

    def finish(self, steps: int, host_s: float) -> Any:
        """The profile of the optimization (``steps`` evaluations in ``host_s`` seconds), or None."""
        return None


class TorchBackend(Backend):
    """CPU or CUDA: torch's own kernels, and the fused fast path of :mod:`stylize.fused`."""

    fast_path = True

    def __init__(self, device: torch.device):
        self.device = device

    def describe(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return f"cpu ({torch.get_num_threads()} threads)"

    def deterministic(self) -> contextlib.AbstractContextManager:
        return _deterministic_cpu() if self.device.type == "cpu" else contextlib.nullcontext()


def resolve(name: str, cfg: Config | None = None) -> Backend:
    """Turn ``auto | cpu | cuda | cuda:N | dlp-sim`` into a working backend, or say why not.

    ``cfg`` carries a backend's own settings (dlp-sim: ``dlp_spec``, ``dlp_mode``); default: ``Config()``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    kind = name.split(":")[0]
    if kind not in BACKENDS:
        raise StylizeError(f"device '{name}' is not available: unknown device. Use cpu, cuda, cuda:N, dlp-sim or auto.")
    if "." in BACKENDS[kind]:
        module, cls = BACKENDS[kind].split(":")
        return getattr(importlib.import_module(module), cls)(cfg or Config())
    if kind == "cuda" and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise StylizeError(f"device '{name}' is not available: {why}. Use --device cpu (or auto).")
    try:
        device = torch.device(name)
        torch.empty((), device=device)  # probe: fails for cuda:7 on a 1-GPU machine
    except (RuntimeError, AssertionError) as e:
        raise StylizeError(f"device '{name}' is not available: {str(e).splitlines()[0]}. Use --device cpu or auto.") from None
    return TorchBackend(device)


@contextlib.contextmanager
def _deterministic_cpu() -> Iterator[None]:
    """Deterministic algorithms on the CPU (bitwise repeatable runs, tested)."""
    import torch.utils.deterministic as det

    previous, fill = torch.are_deterministic_algorithms_enabled(), det.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    det.fill_uninitialized_memory = False  # NaN-filling every new tensor made steps 1.7x slower; we read none unwritten
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        det.fill_uninitialized_memory = fill


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a run on ``device``, or None when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    free = _meminfo_available()
    limit = _cgroup_room()  # a container's memory limit can be far below the machine's free memory
    if free is None or limit is None:
        return free if limit is None else limit
    return min(free, limit)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup v2 memory limit, or None when there is no limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
