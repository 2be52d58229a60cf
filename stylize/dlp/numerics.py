"""Numerics modes of the simulated DLP: what the matrix unit (conv, matmul, Gram) sees and what it stores.

- ``fp32``: values pass unchanged (results equal the CPU's up to summation order).
- ``fp16``: operands are stored in half precision (rounded on the way in), products of two halves are exact
  in fp32, sums accumulate in fp32, results are stored in half again. Gradients carry a per-tensor
  power-of-two scale into half (:func:`half_scaled`: loss scaling, per tensor), or the small ones underflow.
- ``int8``: integer arithmetic as a DLP does it (BANG's fixed point, the seed's adaptive bit-width table):
  activations are int8 codes with one power-of-two *position* per tensor (``x ≈ q · 2^pos``), weights int8
  codes with one position per output channel, gradients int16 codes with one position per tensor. The
  kernels multiply the integer codes and accumulate in int32 (saturating); the epilogue *requantizes*: it
  multiplies the accumulator by the operands' scales (a shift, since they are powers of two), adds the bias,
  applies the ReLU, and stores the result as int8 (an activation, with its own position) or int16 (a
  gradient). Gram matrices and the loss residual stay fp32: the loss is computed in fp32, as mixed-precision
  training keeps it (an int8 Gram target would put 8-bit noise into every style loss).

  Exactness: the simulator computes the integer accumulation in float64 over the integer codes. A product of
  an int16 and an int8 code is below 2^22 in magnitude, so any partial sum of up to 2^31 products is an
  integer below 2^53: float64 represents it exactly whatever the summation order or blocking (the host's
  float64 convolution is im2col + GEMM: multiplies and adds only). The sum is then saturated to int32, as the
  accumulator would. A test holds the kernel bit-exact against a plain int64 reference.

In every mode the vector unit (pooling, elementwise ops, reductions, and with them the optimizer's vector
arithmetic) works in fp32, as mixed-precision training keeps master values in fp32: LBFGS's ``1 / yᵀs`` would
overflow half precision (max 65504) within a few steps.

Error bounds (tests hold the kernels to them): an operand rounded to ``bits`` has absolute error at most
``2^pos / 2``; fp16 rounding has relative error at most ``2^-11``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

QMAX = {"int8": 127, "int16": 32767, "int32": 2**31 - 1}
DTYPES = {"int8": torch.int8, "int16": torch.int16, "int32": torch.int32}


def position(x: torch.Tensor, kind: str = "int8") -> int:
    """The per-tensor power-of-two position: the smallest ``pos`` with ``max|x| <= QMAX · 2^pos``."""
    amax = float(x.detach().abs().max()) if x.numel() else 0.0
    if amax == 0.0 or not math.isfinite(amax):
        return 0
    return math.ceil(math.log2(amax / QMAX[kind]))


def positions(x: torch.Tensor, kind: str = "int8", axis: int = 0) -> torch.Tensor:
    """One position per slice along ``axis`` (per output channel for weights), as int64."""
    amax = x.detach().abs().movedim(axis, 0).reshape(x.shape[axis], -1).amax(1).double()
    pos = torch.ceil(torch.log2(amax / QMAX[kind]))
    return torch.where(torch.isfinite(pos) & (amax > 0), pos, torch.zeros_like(pos)).long()


@dataclass
class Quantized:
    """Integer codes and their power-of-two scales: ``value = codes · scale`` (``scale`` broadcasts)."""

    codes: torch.Tensor  # int8 / int16
    scale: torch.Tensor  # float64: a 0-dim tensor, or per slice along an axis (shaped to broadcast)

    def values(self) -> torch.Tensor:
        return (self.codes.double() * self.scale).float()


def saturate(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Round to nearest even and clamp into ``kind``'s range, as integer codes of that dtype."""
    q = QMAX[kind]
    return torch.clamp(torch.round(x), -q - 1, q).to(DTYPES[kind])


def quantize(x: torch.Tensor, kind: str = "int8", axis: int | None = None) -> Quantized:
    """``x`` as ``kind`` codes with a position per tensor (``axis`` None) or per slice along ``axis``."""
    if axis is None:
        scale = torch.tensor(2.0 ** position(x, kind), dtype=torch.float64)
    else:
        shape = [1] * x.dim()
        shape[axis] = x.shape[axis]
        scale = torch.pow(2.0, positions(x, kind, axis).double()).view(shape)
    return Quantized(saturate(x.double() / scale, kind), scale)


def fixed_point(x: torch.Tensor, kind: str = "int8") -> torch.Tensor:
    """``x`` rounded to ``kind`` fixed point with its own power-of-two position (values, not integer codes)."""
    scale = 2.0 ** position(x, kind)
    q = QMAX[kind]
    return torch.clamp(torch.round(x / scale), -q - 1, q) * scale


def half(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to fp16 storage (kept in its dtype so fp32 accumulation follows)."""
    return x.to(torch.float16).to(x.dtype) if x.dtype != torch.float16 else x


HALF_TOP = 2.0**14  # scaled gradients put their largest magnitude in [2^14, 2^15): headroom below 65504


def half_scaled(x: torch.Tensor) -> torch.Tensor:
    """A gradient in fp16 with a per-tensor power-of-two scale (dynamic loss scaling, per tensor): ``x · 2^e``
    rounded to half, then ``/ 2^e``. Without it the content loss's gradient near a content init (~1e-7) is
    below fp16's smallest subnormal (6e-8) and vanishes; scaling by a power of two adds no rounding of its own."""
    amax = float(x.detach().abs().max()) if x.numel() else 0.0
    if amax == 0.0 or not math.isfinite(amax):
        return half(x)
    scale = 2.0 ** math.floor(math.log2(HALF_TOP / amax))
    return half(x * scale) / scale


def operand(x: torch.Tensor, mode: str, role: str = "activation") -> torch.Tensor:
    """An operand as the matrix unit sees it: ``role`` is ``activation``, ``weight`` or ``gradient``."""
    if mode == "fp16":
        return half_scaled(x) if role == "gradient" else half(x)
    if mode == "int8":
        return fixed_point(x, "int16" if role == "gradient" else "int8")
    return x


def store(x: torch.Tensor, mode: str, role: str = "float") -> torch.Tensor:
    """A matrix-unit result as written back to DRAM: half in fp16 mode; in int8 mode an ``activation`` is
    requantized to int8 and a ``gradient`` to int16 (each with its own position), a ``float`` (Gram, residual,
    a plain matmul) stays fp32. Returns values (the simulator keeps DRAM in fp32 tensors)."""
    if mode == "fp16":
        return half_scaled(x) if role == "gradient" else half(x)
    if mode == "int8" and role in ("activation", "gradient"):
        return quantize(x, "int16" if role == "gradient" else "int8").values()
    return x


def element_bytes(mode: str, role: str = "activation") -> int:
    """Bytes per element of a matrix-unit operand (DMA in, on-chip buffers), for the cost model."""
    if mode == "fp16":
        return 2
    if mode == "int8":
        return 2 if role == "gradient" else 1
    return 4


def store_bytes(mode: str, role: str = "float") -> int:
    """Bytes per element of a stored result (see :func:`store`)."""
    if mode == "fp16":
        return 2
    if mode == "int8" and role in ("activation", "gradient"):
        return 2 if role == "gradient" else 1
    return 4


# ---- static calibration (``stylize quantize`` artefacts) --------------------------------------------------------
# With a quantized artefact loaded, int8 mode quantizes a calibrated conv's operands with the artefact's scales
# instead of the dynamic power-of-two positions above: its input per tensor as uint8 with the calibrated scale and
# zero point (values outside the calibrated range saturate, as static quantization does), its weights per output
# channel as symmetric int8. The scales are floats, not powers of two: a fixed-point unit would need a rescale
# in its epilogue (not priced by the cost model). Gradients keep their dynamic int16 positions.


def affine_uint8(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """``x`` rounded to uint8 codes ``clamp(round(x / scale) + zp, 0, 255)``, returned as values."""
    return (torch.clamp(torch.round(x / scale) + zero_point, 0, 255) - zero_point) * scale


def per_channel_int8(w: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(Cout, ...) weights rounded to symmetric int8 with one scale per output channel, returned as values."""
    s = scales.to(w.dtype).view(-1, *([1] * (w.dim() - 1)))
    return torch.clamp(torch.round(w / s), -128, 127) * s
