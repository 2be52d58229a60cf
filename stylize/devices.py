"""Choose the device once, from one string, and probe it."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import StylizeError


def resolve(name: str) -> torch.device:
    """Turn ``auto | cpu | cuda | cuda:N | dlp-sim`` into a working ``torch.device``, or say why not."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "dlp-sim":
        from . import dlp  # registers the simulated deep-learning processor as torch.device("dlp")

        return dlp.DEVICE
    if name.startswith("cuda") and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise StylizeError(f"device '{name}' is not available: {why}. Use --device cpu (or auto).")
    try:
        device = torch.device(name)
        torch.empty((), device=device)  # probe: fails for cuda:7 on a 1-GPU machine
    except (RuntimeError, AssertionError) as e:
        raise StylizeError(f"device '{name}' is not available: {str(e).splitlines()[0]}. Use --device cpu or auto.") from None
    return device


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "dlp":
        from . import dlp

        rt = dlp.current()
        return f"dlp-sim ({rt.spec.name} spec, {rt.mode})"
    return f"cpu ({torch.get_num_threads()} threads)"


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
