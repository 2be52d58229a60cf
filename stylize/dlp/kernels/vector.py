"""The vector unit: elementwise ops, reductions and pooling, streamed through NRAM, in fp32 in every mode.

Elementwise ops and pooling (2x2 windows never straddle a tile: tiles hold whole rows of windows) give the
same values however they are tiled, so they run whole and are priced per NRAM tile. Reductions are where
tiling shows: a sum is computed as per-tile partial sums (each tile one NRAM load) that are then added — the
order a DLP uses, which differs from the host's in the last bits.
"""

from __future__ import annotations

import math
import time

import torch

from .. import numerics, runtime
from ..cost import TileGroup, streaming


def _numel(x) -> int:
    if isinstance(x, (list, tuple)):
        return sum(_numel(v) for v in x)
    return x.numel() if isinstance(x, torch.Tensor) else 0


def elementwise(func, args, kwargs, name: str):
    """Run one aten elementwise op on the vector unit (fp32 in every mode: see numerics)."""
    started = time.perf_counter()
    rt = runtime.current()
    out = func(*args, **kwargs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    numel_in = sum(_numel(a) for a in args) + sum(_numel(v) for v in kwargs.values())
    numel_out = sum(_numel(o) for o in outs)
    runtime.record(name, streaming(numel_in, numel_out, max(numel_out, numel_in), rt.spec, rt.mode, 4), started)
    return out


def tile_elements(rt) -> int:
    """Elements of one reduction tile: half the NRAM (double buffering) of fp32."""
    return max(1, rt.spec.nram_bytes // 2 // 4)


def tiled_sum(x: torch.Tensor, name: str = "sum", square: bool = False, record: bool = True) -> torch.Tensor:
    """Sum of all elements (of squares with ``square``) as per-tile partial sums, then their sum (0-dim)."""
    started = time.perf_counter()
    rt = runtime.current()
    t = tile_elements(rt)
    flat = x.reshape(-1)
    n = flat.numel()
    tiles = max(1, math.ceil(n / t))
    padded = torch.zeros(tiles * t, dtype=x.dtype)  # the last tile's remainder is padded with zeros
    padded[:n] = flat
    blocks = padded.view(tiles, t)
    partial = (blocks * blocks if square else blocks).sum(1)  # one partial per tile, on chip
    out = partial.sum()
    if record:
        runtime.record(name, streaming(n, tiles, n * (2 if square else 1), rt.spec, rt.mode, 4), started)
    return out


def tiled_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    started = time.perf_counter()
    rt = runtime.current()
    out = tiled_sum(a * b, record=False)
    runtime.record("dot", streaming(2 * a.numel(), 1, 2 * a.numel(), rt.spec, rt.mode, 4), started)
    return out


def mse_loss(x: torch.Tensor, target: torch.Tensor, reduction: int = 1) -> torch.Tensor:
    """``mean((x - target)²)`` (the content loss) as a tiled reduction; reduction 1 = mean, 2 = sum."""
    started = time.perf_counter()
    rt = runtime.current()
    if reduction == 0:
        return elementwise(torch.ops.aten.mse_loss.default, (x, target, 0), {}, "mse_loss")
    total = tiled_sum(x - target, square=True, record=False)
    out = total / x.numel() if reduction == 1 else total
    runtime.record("mse_loss", streaming(2 * x.numel(), 1, 3 * x.numel(), rt.spec, rt.mode, 4), started)
    return out


def pool(func, args, kwargs, name: str, index_bytes: int = 1):
    """Max/avg pooling and their backward on the vector unit: one pass over the input, window results out.
    The max-pool argmax is kept as a byte per output (its position in the window)."""
    started = time.perf_counter()
    rt = runtime.current()
    out = func(*args, **kwargs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    b = numerics.store_bytes(rt.mode)
    numel_in = sum(_numel(a) for a in args if isinstance(a, torch.Tensor) and a.is_floating_point())
    numel_out = _numel(outs[0])
    groups = streaming(numel_in, numel_out, max(numel_in, numel_out), rt.spec, rt.mode, b)
    if len(outs) > 1:  # indices of max_pool2d_with_indices: one byte each
        groups.append(TileGroup(1, bytes_out=numel_out * index_bytes, dmas=0))
    runtime.record(name, groups, started)
    return out
