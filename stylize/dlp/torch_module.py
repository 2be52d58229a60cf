"""``torch.dlp``: the device module PyTorch looks up for a backend (as ``torch.cuda`` for CUDA).

Registered by :mod:`stylize.dlp` (``torch._register_device_module``), so after ``import torch_dlp`` (or
``import stylize.dlp``)::

    torch.dlp.manual_seed(0)            # the device's own generator (torch.manual_seed seeds it too, as for CUDA)
    torch.dlp.synchronize()             # the simulator runs kernels synchronously: returns at once
    torch.dlp.memory_allocated()        # bytes of device DRAM in use; max_memory_allocated, reset_peak_memory_stats
    torch.dlp.device_count()            # 1: only dlp:0 exists; 'dlp:1' is refused with one clear error
"""

from __future__ import annotations

import torch

from . import memory
from .memory import OutOfMemoryError  # noqa: F401  (torch.dlp.OutOfMemoryError, like torch.cuda's)

_generator = torch.Generator()  # the device's RNG state (torch.randn(..., device='dlp') draws from it)
_generator.manual_seed(torch.initial_seed())


def generator() -> torch.Generator:
    return _generator


def is_available() -> bool:
    return True


def is_initialized() -> bool:
    return True


def device_count() -> int:
    return 1


def current_device() -> int:
    return 0


def set_device(device) -> None:
    check_index(device)


def check_index(device) -> None:
    """Refuse ``dlp:N`` for N != 0 (one simulated device, like one ``cuda:0``)."""
    if device is None:
        return
    d = torch.device(device) if not isinstance(device, int) else torch.device("dlp", device)
    if d.type == "dlp" and d.index not in (None, 0):
        raise RuntimeError(f"dlp:{d.index}: no such device; dlp-sim simulates one device, dlp:0 "
                           f"(torch.dlp.device_count() == 1). Use 'dlp' or 'dlp:0'.")


def _is_in_bad_fork() -> bool:
    return False


def manual_seed(seed: int) -> None:
    """Seed the device's generator (``torch.randn(..., device='dlp')`` and the other random ops)."""
    _generator.manual_seed(int(seed))


manual_seed_all = manual_seed  # called by torch.manual_seed for every device


def seed() -> int:
    return _generator.seed()


def initial_seed() -> int:
    return _generator.initial_seed()


def get_rng_state(device="dlp") -> torch.Tensor:
    return _generator.get_state()


def set_rng_state(state: torch.Tensor, device="dlp") -> None:
    _generator.set_state(state)


def synchronize(device=None) -> None:
    """Wait for the device's queue: the simulator runs every kernel before returning, so nothing to wait for."""
    check_index(device)


def memory_allocated(device=None) -> int:
    """Bytes of the device's DRAM held by live tensors."""
    check_index(device)
    return memory.allocated()


def max_memory_allocated(device=None) -> int:
    """The peak of :func:`memory_allocated` since the start or the last :func:`reset_peak_memory_stats`."""
    check_index(device)
    return memory.peak()


def reset_peak_memory_stats(device=None) -> None:
    check_index(device)
    memory.reset_peak()


def mem_get_info(device=None) -> tuple[int, int]:
    """(free, total) bytes of the current spec's DRAM."""
    check_index(device)
    total = memory._capacity()
    return total - memory.allocated(), total
