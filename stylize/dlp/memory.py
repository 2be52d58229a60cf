"""The device's DRAM as an allocator sees it: bytes in use, the peak, and the capacity from the spec.

A DLPTensor's values live in a host tensor (``_data``); several wrappers (views) can share one storage. We count
a storage once, from the first wrapper that holds it until the last one is garbage-collected (a
weak reference with a callback per wrapper), which is what ``torch.cuda.memory_allocated`` reports for CUDA's caching
allocator without its cache. An allocation that would pass the spec's ``dram_gb`` raises
:class:`OutOfMemoryError` before any host memory is taken (for ``empty``; kernel outputs are checked as they
are wrapped).
"""

from __future__ import annotations

import weakref

import torch

from ..errors import StylizeError


class OutOfMemoryError(torch.OutOfMemoryError, StylizeError):
    """An allocation past the simulated device's DRAM. A ``torch.OutOfMemoryError`` (so code written for CUDA
    catches it) and a ``StylizeError`` (so ``stylize run`` reports it as one line, exit 2)."""


_live: dict[int, list[int]] = {}  # storage address -> [bytes, wrappers holding it]
_refs: dict[weakref.ref, int] = {}  # a live wrapper's weak reference -> its storage address
_allocated = 0
_peak = 0


def _capacity() -> int:
    from . import runtime

    return runtime.current().spec.dram_bytes


def reserve(nbytes: int) -> None:
    """Refuse an allocation of ``nbytes`` that does not fit beside what is allocated."""
    capacity = _capacity()
    if _allocated + nbytes > capacity:
        from . import runtime

        gib = 1024**3
        raise OutOfMemoryError(
            f"dlp: out of memory: tried to allocate {nbytes / gib:.2f} GiB with {_allocated / gib:.2f} GiB of the "
            f"{runtime.current().spec.name} spec's {capacity / gib:.2f} GiB DRAM in use. Use a smaller size, free "
            "tensors, or a spec with more DRAM (dram_gb).")


def track(wrapper: torch.Tensor, data: torch.Tensor) -> None:
    """Count ``data``'s storage while ``wrapper`` lives."""
    global _allocated, _peak
    storage = data.untyped_storage()
    key = storage.data_ptr()
    if key == 0:  # an empty tensor owns no memory
        return
    entry = _live.get(key)
    if entry is None:
        nbytes = storage.nbytes()
        reserve(nbytes)
        entry = _live[key] = [nbytes, 0]
        _allocated += nbytes
        _peak = max(_peak, _allocated)
    entry[1] += 1
    _refs[weakref.ref(wrapper, _release)] = key  # a bare weakref with a callback: cheaper than weakref.finalize


def _release(ref: weakref.ref) -> None:
    global _allocated
    key = _refs.pop(ref, None)
    entry = _live.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        _allocated -= entry[0]
        del _live[key]


def allocated() -> int:
    return _allocated


def peak() -> int:
    return _peak


def reset_peak() -> None:
    global _peak
    _peak = _allocated
