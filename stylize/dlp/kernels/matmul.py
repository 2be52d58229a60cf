"""Matrix multiply on the matrix unit, blocked for NRAM/WRAM, and the fused Gram and Gram+MSE kernels.

``C = A @ B`` with A (M, K), B (K, N): the output is cut into ``bm x bn`` tiles that stay in NRAM as fp32
accumulators; K is walked in blocks of ``bk``: an A block (bm x bk) in NRAM, a B block (bk x bn) in WRAM. We
execute these blocks: A and B are zero-padded to whole blocks and reshaped into the block grid, one batched
contraction gives every (tile, K-block) partial product, the partials are summed over the K blocks in fp32,
then the epilogue (scale, or the MSE against a target) runs and the padding is cut away.

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


def _blocked(a: torch.Tensor, b: torch.Tensor, p: MatmulPlan) -> torch.Tensor:
    """A @ B block by block (fp32 accumulation over K blocks); returns the padded (Mp, Np) result."""
    m, k = a.shape
    n = b.shape[1]
    nm, nn, nk = math.ceil(m / p.bm), math.ceil(n / p.bn), math.ceil(k / p.bk)
    ap = torch.zeros((nm * p.bm, nk * p.bk), dtype=a.dtype)
    ap[:m, :k] = a
    bp = torch.zeros((nk * p.bk, nn * p.bn), dtype=b.dtype)
    bp[:k, :n] = b
    # (nk, Mp, bk) @ (nk, bk, Np): every tile's partial product for each K block, then the K-block sum.
    partial = torch.bmm(ap.view(-1, nk, p.bk).transpose(0, 1), bp.view(nk, p.bk, -1))
    return partial.sum(0)


def matmul(a: torch.Tensor, b: torch.Tensor, roles: tuple[str, str] = ("activation", "weight"),
           scale: float = 1.0, name: str = "matmul") -> torch.Tensor:
    """``scale · A @ B`` for 2-D A (M, K) and B (K, N)."""
    started = time.perf_counter()
    rt = runtime.current()
    a_b, b_b = numerics.element_bytes(rt.mode, roles[0]), numerics.element_bytes(rt.mode, roles[1])
    m, k = a.shape
    n = b.shape[1]
    p = plan(m, n, k, rt.spec.nram_bytes, rt.spec.wram_bytes, a_b, b_b)
    c = _blocked(numerics.operand(a, rt.mode, roles[0]), numerics.operand(b, rt.mode, roles[1]), p)[:m, :n]
    if scale != 1.0:
        c = c * scale
    c = numerics.store(c.contiguous(), rt.mode)
    runtime.record(name, tile_groups(m, n, k, p, a_b, b_b, numerics.store_bytes(rt.mode)), started)
    return c


def _rows(features: torch.Tensor) -> torch.Tensor:
    a, b, c, d = features.shape
    return features.reshape(a * b, c * d)  # (a*b, c*d): F of the seed's gram_matrix


def gram(features: torch.Tensor) -> torch.Tensor:
    """``F Fᵀ / (a·b·c·d)`` of (a, b, c, d) features: the seed's ``gram_matrix`` as one kernel."""
    f = _rows(features)
    return matmul(f, f.t(), ("activation", "activation"), 1.0 / features.numel(), name="gram")


def gram_backward(grad: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """d/dF of ``gram``: ``(dG + dGᵀ) F / n`` — one matmul."""
    f = _rows(features)
    dg = grad + grad.t()  # (a*b, a*b); the vector unit's share
    return matmul(dg, f, ("gradient", "activation"), 1.0 / features.numel(), name="gram.backward").reshape(features.shape)


def gram_mse(features: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused ``mean((gram(F) - T)²)``. Returns the loss (0-dim) and the residual ``gram(F) - T`` for backward."""
    started = time.perf_counter()
    rt = runtime.current()
    f = _rows(features)
    m, k = f.shape
    a_b = numerics.element_bytes(rt.mode, "activation")
    p = plan(m, m, k, rt.spec.nram_bytes, rt.spec.wram_bytes, a_b, a_b)
    fq = numerics.operand(f, rt.mode, "activation")
    g = _blocked(fq, fq.t(), p)[:m, :m] / features.numel()
    residual = numerics.store(g - target, rt.mode).contiguous()  # epilogue: G - T, squared and summed on chip
    loss = (residual * residual).sum() / residual.numel()
    # Per tile: the target tile in (fp32), the residual tile out, one partial sum out; 3 vector ops per element.
    groups = tile_groups(m, m, k, p, a_b, a_b, numerics.store_bytes(rt.mode), extra_in=4, epilogue_ops=3)
    runtime.record("gram_mse", groups, started)
    return loss, residual


def gram_mse_backward(grad: torch.Tensor, features: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """d/dF of ``gram_mse``: ``grad · 2 / (C² n) · (R + Rᵀ) F`` with R = G - T (one matmul; R is symmetric
    when the target is a Gram matrix, but any target is handled)."""
    f = _rows(features)
    scale = 2.0 / (residual.numel() * features.numel())
    r = (residual + residual.t()) * grad  # the incoming scalar gradient folded in (vector unit)
    return matmul(r, f, ("gradient", "activation"), scale, name="gram_mse.backward").reshape(features.shape)
