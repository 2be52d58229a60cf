"""Matrix multiply on the matrix unit, blocked for NRAM/WRAM, and the fused Gram and Gram+MSE kernels.

``C = A @ B`` with A (M, K), B (K, N): the output is cut into ``bm x bn`` tiles that stay in NRAM as fp32
accumulators; K is walked in blocks of ``bk``: an A block (bm x bk) in NRAM, a B block (bk x bn) in WRAM. We
execute the K blocks, which decide the rounding: one batched matmul gives every full K block's partial product
(the blocks are read in place), one more the remainder block's, and the partials are summed in fp32; then the
epilogue (scale, or the MSE against a target) runs. The output tiles are priced but computed together: they cannot change a value.

The fused style loss is the teaching example of fusion: ``gram_mse(F, T) = mean((F Fᵀ / n - T)²)`` computes
each Gram tile, subtracts the target tile and reduces the squares while the tile is still on chip: the Gram
matrix is never written to DRAM; only the residual ``R = G - T`` is (the backward needs it):
``dL/dF = (2 / (C² n)) · (R + Rᵀ) F`` — one more matmul.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from functools import lru_cache

import torch

from .. import numerics, runtime
from ..cost import TileGroup

ACC_BYTES = 4
_BATCHED_PARTIALS = 1 << 24  # at most this many partial-product elements held at once (64 MB of fp32)


@dataclass(frozen=True)
class MatmulPlan:
    bm: int
    bn: int
    bk: int


@lru_cache(maxsize=256)
def plan(m: int, n: int, k: int, nram: int, wram: int, a_b: int, b_b: int) -> MatmulPlan:
    """Square-ish output tiles using at most a quarter of NRAM; K blocks filling the rest (half NRAM, half WRAM)."""
    nb, wb = nram // 2, wram // 2
    side = max(1, math.isqrt((nb // 2) // ACC_BYTES))
    bm, bn = min(m, side), min(n, side)
    bk = max(1, min(k, (nb - bm * bn * ACC_BYTES) // (bm * a_b), wb // (bn * b_b)))
    return MatmulPlan(bm, bn, bk)


def _splits(total: int, block: int) -> list[tuple[int, int]]:
    full, rest = divmod(total, block)
    return [(block, full)] + ([(rest, 1)] if rest else [])


def tile_groups(m: int, n: int, k: int, p: MatmulPlan, a_b: int, b_b: int, out_b: int,
                extra_in: int = 0, epilogue_ops: int = 1) -> list[TileGroup]:
    """Per output tile: all its A and B blocks in, the tile out (``extra_in``: bytes per output element the
    epilogue reads, e.g. the MSE target)."""
    n_k = math.ceil(k / p.bk)
    return [TileGroup(cm * cn, bytes_in=k * (tm * a_b + tn * b_b) + tm * tn * extra_in, bytes_out=tm * tn * out_b,
                      macs=tm * tn * k, vector_ops=epilogue_ops * tm * tn, dmas=2 * n_k + 1)
            for (tm, cm), (tn, cn) in itertools.product(_splits(m, p.bm), _splits(n, p.bn))]


def _blocked(a: torch.Tensor, b: torch.Tensor | None, bk: int) -> torch.Tensor:
    """A @ B (B = Aᵀ when None) with K walked in blocks of ``bk``: each block's partial product is computed
    (one batched matmul over the full blocks, read in place; one more for the remainder block) and the
    partials are summed in fp32, as the tiles accumulate on chip."""
    b = a.t() if b is None else b
    m, k = a.shape
    nk, rest = divmod(k, bk)
    if nk <= 1 and rest == 0 or nk == 0:
        return a @ b
    full = nk * bk
    n = b.shape[1]
    if nk * m * n > _BATCHED_PARTIALS:  # big products (the lecture's 8192²): accumulate block by block instead
        out = a[:, :bk] @ b[:bk]
        for k0 in range(bk, full, bk):
            out += a[:, k0:k0 + bk] @ b[k0:k0 + bk]
    else:
        blocks_a = a[:, :full].unflatten(1, (nk, bk)).transpose(0, 1)  # (nk, M, bk): views, no copy
        blocks_b = b[:full].unflatten(0, (nk, bk))  # (nk, bk, N)
        out = torch.bmm(blocks_a, blocks_b).sum(0)
    if rest:
        out += a[:, full:] @ b[full:]  # the remainder block
    return out


def _kind(role: str) -> str:
    return "int16" if role == "gradient" else "int8"


def product(a: torch.Tensor, b: torch.Tensor | None, roles: tuple[str, str], bk: int, mode: str) -> torch.Tensor:
    """``A @ B`` (``B = Aᵀ`` when None) as the matrix unit computes it in ``mode``: in int8, integer codes
    (per-tensor positions), an exact int32 accumulator (saturated), requantized by the two scales."""
    if mode != "int8":
        return _blocked(numerics.operand(a, mode, roles[0]), None if b is None else numerics.operand(b, mode, roles[1]), bk)
    qa = numerics.quantize(a, _kind(roles[0]))
    qb = qa if b is None else numerics.quantize(b, _kind(roles[1]))
    codes_b = None if b is None else qb.codes.double()
    acc = numerics.saturate(_blocked(qa.codes.double(), codes_b, bk), "int32")  # exact: see numerics
    return (acc.double() * (qa.scale * qb.scale)).float()


def matmul(a: torch.Tensor, b: torch.Tensor, roles: tuple[str, str] = ("activation", "weight"),
           scale: float = 1.0, name: str = "matmul", out_role: str = "float") -> torch.Tensor:
    """``scale · A @ B`` for 2-D A (M, K) and B (K, N)."""
    started = time.perf_counter()
    rt = runtime.current()
    a_b, b_b = numerics.element_bytes(rt.mode, roles[0]), numerics.element_bytes(rt.mode, roles[1])
    m, k = a.shape
    n = b.shape[1]
    p = plan(m, n, k, rt.spec.nram_bytes, rt.spec.wram_bytes, a_b, b_b)
    c = product(a, b, roles, p.bk, rt.mode)
    if scale != 1.0:  # the epilogue
        c = c.mul_(scale)
    c = numerics.store(c, rt.mode, out_role)
    mac_kind = "int16" if rt.mode == "int8" and "gradient" in roles else None
    runtime.record(name, tile_groups(m, n, k, p, a_b, b_b, numerics.store_bytes(rt.mode, out_role)), started, mac_kind)
    return c


def _rows(features: torch.Tensor) -> torch.Tensor:
    a, b, c, d = features.shape
    return features.reshape(a * b, c * d)  # (a*b, c*d): F of the seed's gram_matrix


def _gram_on_chip(features: torch.Tensor, rt) -> tuple[torch.Tensor, tuple[int, int, int], MatmulPlan, int]:
    """``F Fᵀ / n`` by the K-blocked kernel, with what pricing it needs: (m, m, k), the plan, bytes per element."""
    f = _rows(features)
    m, k = f.shape
    a_b = numerics.element_bytes(rt.mode, "activation")
    p = plan(m, m, k, rt.spec.nram_bytes, rt.spec.wram_bytes, a_b, a_b)
    g = product(f, None, ("activation", "activation"), p.bk, rt.mode) / features.numel()
    return g, (m, m, k), p, a_b


def gram(features: torch.Tensor) -> torch.Tensor:
    """``F Fᵀ / (a·b·c·d)`` of (a, b, c, d) features: the seed's ``gram_matrix`` as one kernel."""
    started = time.perf_counter()
    rt = runtime.current()
    g, shape, p, a_b = _gram_on_chip(features, rt)
    runtime.record("gram", tile_groups(*shape, p, a_b, a_b, numerics.store_bytes(rt.mode)), started)
    return numerics.store(g, rt.mode)


def gram_backward(grad: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """d/dF of ``gram``: ``(dG + dGᵀ) F / n`` — one matmul."""
    f = _rows(features)
    dg = (grad + grad.t()) / features.numel()  # (a*b, a*b): the vector unit's share, scale included
    return matmul(dg, f, ("gradient", "activation"), name="gram.backward", out_role="gradient").reshape(features.shape)


def gram_mse(features: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused ``mean((gram(F) - T)²)``. Returns the loss (0-dim) and the residual ``gram(F) - T`` for backward."""
    started = time.perf_counter()
    rt = runtime.current()
    g, shape, p, a_b = _gram_on_chip(features, rt)
    residual = numerics.store(g - target, rt.mode).contiguous()  # epilogue: G - T, squared and summed on chip
    loss = (residual * residual).sum() / residual.numel()
    # Per tile: the target tile in (fp32), the residual tile out, one partial sum out; 3 vector ops per element.
    groups = tile_groups(*shape, p, a_b, a_b, numerics.store_bytes(rt.mode), extra_in=4, epilogue_ops=3)
    runtime.record("gram_mse", groups, started)
    return loss, residual


def gram_mse_backward(grad: torch.Tensor, features: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """d/dF of ``gram_mse``: ``grad · 2 / (C² n) · (R + Rᵀ) F`` with R = G - T (one matmul; R is symmetric
    when the target is a Gram matrix, but any target is handled)."""
    f = _rows(features)
    scale = 2.0 / (residual.numel() * features.numel())
    r = (residual + residual.t()) * (grad * scale)  # (C, C): the vector unit folds the scale and incoming gradient in
    return matmul(r, f, ("gradient", "activation"), name="gram_mse.backward", out_role="gradient").reshape(features.shape)
