"""Memory estimates of a run, from the layer table: what ``stylize run`` checks before allocating anything and
what ``stylize model`` prints."""

from __future__ import annotations

import torch

from . import devices, features, images
from .config import MIN_SIZE, Config
from .errors import StylizeError

CPU_OVERHEAD_BYTES = 700 * 2**20  # RSS of `import stylize` alone (torch, CUDA-build libraries): 656 MiB measured
MARGIN = 1.25  # of estimate_bytes (see there)


def estimate_bytes(height: int, width: int, cut: int, lbfgs_history: int, device: torch.device) -> int:
    """Peak memory of a run at this image size, from the layer table (float32).

    Counts weights, every activation up to the cut (autograd keeps them for backward), max-pool indices
    (int64), two activation-sized gradient buffers, Gram matrices, LBFGS history (2 vectors of the image per
    entry) and, on the CPU, the torch runtime. A 25 % margin covers allocator slack and the loop's own image-sized
    tensors (measured, real runs, peak RSS: the seed's graph at 341x256, 1.06 GiB; the fast path at 2048x1536
    with history 12, 10.14 GiB; docs/high-resolution.md has the table).
    """
    floats, params, in_ch, largest, grams = 3 * height * width, 0, 3, 0, 0
    for entry in features.LAYERS[: cut + 1]:
        stride = 2 ** entry.pools_before
        n = entry.channels * (height // stride) * (width // stride)
        floats += n * (3 if entry.kind == "pool" else 1)  # pool indices are int64 = 2 floats
        largest = max(largest, n)
        if entry.kind == "conv":
            params += entry.channels * (in_ch * 9 + 1)
            in_ch = entry.channels
            grams += 3 * entry.channels**2  # target, input gram, its gradient (upper bound: one per conv)
    image_vectors = (2 * lbfgs_history + 6) * 3 * height * width
    total = 4 * (params + floats + 2 * largest + grams + image_vectors)
    return int(total * MARGIN) + (CPU_OVERHEAD_BYTES if device.type == "cpu" else 0)


def setup_bytes(height: int, width: int, cut: int, style_area: float, device: torch.device) -> int:
    """Peak memory while the targets are computed: no autograd, so per image two activations are alive at a time
    (a layer's input and output); the content image and the style images (``style_area``: their summed area in
    units of the content's, ``n × style_scale²``) go through the network side by side."""
    params, in_ch, largest = 0, 3, 0
    for entry in features.LAYERS[: cut + 1]:
        stride = 2 ** entry.pools_before
        largest = max(largest, entry.channels * (height // stride) * (width // stride))
        if entry.kind == "conv":
            params += entry.channels * (in_ch * 9 + 1)
            in_ch = entry.channels
    total = 4 * (params + 2 * largest * (1 + style_area))
    return int(total * 1.4) + (CPU_OVERHEAD_BYTES if device.type == "cpu" else 0)


def run_bytes(width: int, height: int, cfg: Config, cut: int, device: torch.device) -> int:
    """The larger of the optimization's and the setup's peak for a run of ``cfg`` at ``width`` x ``height``."""
    style_area = len(cfg.style or [None]) * cfg.style_scale**2  # large style images weigh on the setup
    return max(estimate_bytes(height, width, cut, cfg.lbfgs_history, device),
               setup_bytes(height, width, cut, style_area, device))


def check_layers(width: int, height: int, cfg: Config, cut: int) -> None:
    """Refuse a size too small for the deepest layer's poolings."""
    pools = features.LAYERS[cut].pools_before
    if min(height, width) < 2**pools:
        raise StylizeError(f"size {cfg.size} is too small: layer {features.LAYERS[cut].name} sits after {pools} poolings, "
                           f"so the shorter edge must be at least {2**pools} px. Use --size {max(2**pools, 64)} or more.")


def check_size(width: int, height: int, cfg: Config, cut: int, device: torch.device) -> None:
    """Refuse, before allocating anything, a size the layers cannot take or the device cannot hold (whole-image;
    the fast path plans tiles instead: stylize/plan.py)."""
    check_layers(width, height, cfg, cut)
    pools = features.LAYERS[cut].pools_before
    free = devices.available_memory(device)
    need = run_bytes(width, height, cfg, cut, device)
    if free is None or need <= free:
        return

    def fits(size: int) -> bool:
        return run_bytes(*images.shorter_edge_size(width, height, size), cfg, cut, device) <= free

    low, high = max(MIN_SIZE, 2**pools), cfg.size  # binary search for the largest size that fits
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    hint = f"The largest size that fits is about {low}: use --size {low}." if fits(low) else "Free some memory first."
    raise StylizeError(f"size {cfg.size} ({width}x{height} px) needs about {need / 2**30:.1f} GiB on {device}, "
                       f"only {free / 2**30:.1f} GiB is free. {hint}")
