"""Convolution on the matrix unit: NRAM/WRAM tiling, halos, Cin accumulation, fused bias+ReLU epilogue.

How a real DLP kernel runs a 3x3 convolution, and how we run it:

1. The output is cut into spatial tiles of ``th x tw``; each needs an input tile of ``(th+kh-1) x (tw+kw-1)``
   (the *halo*: neighbouring rows/columns read twice). Tile sizes are chosen so that an input tile (``ci_blk``
   channels) plus its fp32 output accumulator fit in half the NRAM (the other half holds the next tile: double
   buffering), and a weight block (``co_blk x ci_blk x kh x kw``) fits in half the WRAM.
2. When the input channels do not fit at once they are split into blocks and the partial sums accumulate in
   NRAM (fp32) before the epilogue (bias, then ReLU when fused) runs and the tile is stored.

We execute exactly these tiles, vectorised instead of one by one: the padded input (channels-last, as DLPs
store activations) is cut into all its halo tiles, which are stacked along the batch dimension; one host
convolution per Cin block computes every tile (no padding inside: a tile sees only its own halo); the output
tiles are stitched back and the remainder cropped. A halo, stitch or remainder bug gives a wrong image.
Splitting Cout into WRAM-sized blocks cannot change any value (output channels are independent), so it
is priced per block but executed in one call.
"""

from __future__ import annotations

import itertools
import math
import time

import torch
import torch.nn.functional as F

from .. import mapping, numerics, runtime
from ..mapping import ACC_BYTES, ConvPlan, plan  # noqa: F401  (the kernel's default plan; tests call conv.plan)
from ..cost import TileGroup



def _splits(total: int, block: int) -> list[tuple[int, int]]:
    """(size, count) of full blocks and the remainder."""
    full, rest = divmod(total, block)
    return [(block, full)] + ([(rest, 1)] if rest else [])


def tile_groups(n: int, cin: int, cout: int, kh: int, kw: int, ho: int, wo: int, p: ConvPlan, mode: str,
                in_role: str = "activation", epilogue_ops: int = 1, out_role: str = "activation") -> list[TileGroup]:
    """Per-tile DMA bytes and work of a convolution (weight-stationary when Cin fits in one block)."""
    in_b, w_b = numerics.element_bytes(mode, in_role), numerics.element_bytes(mode, "weight")
    out_b = numerics.store_bytes(mode, out_role)
    n_ci = math.ceil(cin / p.ci_blk)
    groups = []
    if n_ci == 1:  # weights loaded once per Cout block and kept in WRAM for every spatial tile
        groups += [TileGroup(count, bytes_in=co * cin * kh * kw * w_b, dmas=1) for co, count in _splits(cout, p.co_blk)]
    for (h, ch), (w, cw), (co, cc) in itertools.product(_splits(ho, p.th), _splits(wo, p.tw), _splits(cout, p.co_blk)):
        halo_in = cin * (h + kh - 1) * (w + kw - 1) * in_b
        weights = co * cin * kh * kw * w_b if n_ci > 1 else 0  # reloaded per tile when Cin is blocked
        groups.append(TileGroup(n * ch * cw * cc, bytes_in=halo_in + weights, bytes_out=co * h * w * out_b,
                                macs=co * cin * h * w * kh * kw, vector_ops=epilogue_ops * co * h * w,
                                dmas=(2 if n_ci > 1 else 1) * n_ci + 1))
    return groups


def tiled(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int],
          p: ConvPlan) -> torch.Tensor:
    """The tiles of a stride-1 convolution, executed: halo tiles stacked along the batch, one host convolution
    per Cin block, partial sums added in the operands' dtype, output tiles stitched and cropped.

    With float64 operands holding integer codes this is the exact integer accumulation (see numerics)."""
    n, cin, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ph, pw = padding
    ho, wo = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    nh, nw = math.ceil(ho / p.th), math.ceil(wo / p.tw)
    ih, iw = p.th + kh - 1, p.tw + kw - 1
    # Channels-last padded input, with extra rows/columns so the last (remainder) tile's halo exists.
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, nw * p.tw + kw - 1 - w - pw, ph, nh * p.th + kh - 1 - h - ph))
    tiles = xp.unfold(1, ih, p.th).unfold(2, iw, p.tw)  # (N, nh, nw, C, ih, iw): views, halos overlap
    tiles = tiles.permute(0, 1, 2, 4, 5, 3).reshape(n * nh * nw, ih, iw, cin)  # the DMA of every input tile
    out = None
    for c0 in range(0, cin, p.ci_blk):  # Cin blocks accumulate on chip; the bias starts the accumulator
        block = tiles[..., c0:c0 + p.ci_blk].permute(0, 3, 1, 2)
        part = F.conv2d(block, weight[:, c0:c0 + p.ci_blk], bias if c0 == 0 else None)
        out = part if out is None else out.add_(part)
    # Stitch: (N*nh*nw, Cout, th, tw) -> (N, nh*th, nw*tw, Cout) -> crop the remainder.
    out = out.permute(0, 2, 3, 1).reshape(n, nh, nw, p.th, p.tw, cout).permute(0, 1, 3, 2, 4, 5)
    out = out.reshape(n, nh * p.th, nw * p.tw, cout)  # the store of every output tile (one copy)
    if (nh * p.th, nw * p.tw) != (ho, wo):
        out = torch.empty((n, ho, wo, cout), dtype=out.dtype).copy_(out[:, :ho, :wo])
    return out.permute(0, 3, 1, 2)


def int_accumulate(x_codes: torch.Tensor, w_codes: torch.Tensor, padding: tuple[int, int], p: ConvPlan) -> torch.Tensor:
    """The int32 accumulator of a tiled integer convolution (int8/int16 codes in), saturated."""
    acc = tiled(x_codes.double(), w_codes.double(), None, padding, p)  # exact: see numerics
    return numerics.saturate(acc, "int32")


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int],
           relu: bool = False, roles: tuple[str, str] = ("activation", "weight"), name: str = "conv2d",
           weight_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Stride-1 convolution of (N, Cin, H, W) by (Cout, Cin, kh, kw), tiled for the current spec.

    Returns (N, Cout, Ho, Wo), stored channels-last. ``relu`` fuses the ReLU into the epilogue.
    In int8 mode ``weight`` may already be integer codes, with ``weight_scale`` their scale (the input gradient).
    """
    started = time.perf_counter()
    rt = runtime.current()
    mode = rt.mode
    n, cin, h, w = x.shape
    cout, _, kh, kw = weight.shape
    ph, pw = padding
    ho, wo = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    in_kind = "int16" if roles[0] == "gradient" else "int8"
    out_role = "gradient" if roles[0] == "gradient" else "activation"
    # The tiles and loop order of the mapping search (dlp/mapping.py): they price the kernel, and its tiles and
    # Cin blocks are what executes (the block order decides the fp32 rounding).
    layer = mapping.ConvLayer(cin, cout, ho, wo, kh, kw)
    m, traffic = mapping.choose(layer, rt.spec, mode, out_role)
    p = ConvPlan(m.th, m.tw, m.cb, m.kb)
    qp = runtime.calibrated(weight) if roles == ("activation", "weight") else None
    if qp is not None:  # a `stylize quantize` artefact: its calibrated scales, not dynamic positions
        xq = numerics.affine_uint8(x, qp["input_scale"], qp["input_zero_point"])
        wq = numerics.per_channel_int8(weight, qp["weight_scale"])
        out = tiled(xq, wq, bias, padding, p)
    elif mode == "int8":
        qx = numerics.quantize(x, in_kind)
        qw = numerics.quantize(weight, "int8", axis=0) if weight_scale is None else numerics.Quantized(weight, weight_scale)
        acc = int_accumulate(qx.codes, qw.codes, padding, p)
        # Epilogue: requantize the accumulator by the operands' scales (per output channel), then the bias.
        out = (acc.double() * (qx.scale * qw.scale.reshape(1, -1, 1, 1))).float()
        if bias is not None:
            out += bias.view(1, -1, 1, 1)
    else:
        out = tiled(numerics.operand(x, mode, roles[0]), numerics.operand(weight, mode, roles[1]), bias, padding, p)
    if relu:
        out = out.relu_()
    # A calibrated conv's output stays fp32: its requantization belongs to the consumer's calibrated input scale
    # (static quantization), which this kernel does not know.
    out = numerics.store(out, mode, "float" if qp is not None else out_role)
    mac_kind = "int16" if mode == "int8" and roles[0] == "gradient" else None
    runtime.record(name, mapping.tile_groups(layer, m, traffic, n, 2 if relu else 1), started, mac_kind)
    return out


def conv2d_input_grad(grad_out: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """d(loss)/d(input) of a stride-1 convolution: the same tiled kernel with the weights flipped and
    transposed (a "full" correlation), gradients as the int16 operand in int8 mode.

    In int8 mode the weights are the forward's int8 codes with one scale per *forward* output channel, which
    is the reduction axis here: that scale cannot be applied after the sum, so it is folded into the gradient
    before it is quantized (``g'[o] = g[o] · s_w[o]``; one vector-unit multiply), and the codes stay as stored."""
    kh, kw = weight.shape[2:]
    pad = (kh - 1 - padding[0], kw - 1 - padding[1])
    if runtime.current().mode == "int8" and runtime.calibrated(weight) is None:
        qw = numerics.quantize(weight, "int8", axis=0)
        folded = grad_out * qw.scale.reshape(1, -1, 1, 1).float()
        codes = qw.codes.flip(2, 3).transpose(0, 1)  # (Cin, Cout, kh, kw)
        return conv2d(folded, codes, None, pad, roles=("gradient", "weight"), name="conv2d.input_grad",
                      weight_scale=torch.ones(codes.shape[0], dtype=torch.float64))
    w_t = weight.flip(2, 3).transpose(0, 1)  # (Cin, Cout, kh, kw)
    return conv2d(grad_out, w_t, None, pad, roles=("gradient", "weight"), name="conv2d.input_grad")
