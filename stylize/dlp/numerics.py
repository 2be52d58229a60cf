"""Numerics modes of the simulated DLP: what the matrix unit (conv, matmul, Gram) sees.

- ``fp32``: values pass unchanged (results equal the CPU's up to summation order).
- ``fp16``: operands are stored in half precision (rounded on the way in), products of two halves are exact
  in fp32, sums accumulate in fp32, results are stored in half again.
- ``int8``: fixed point as in BANG, with one power-of-two *position* per tensor: ``x ≈ q · 2^pos`` with
  ``q`` an int8 (weights and activations) or an int16 (gradients), ``pos`` the smallest that holds the
  tensor's largest magnitude. This is the seed's adaptive bit-width table (neurons/weights int8, gradients
  int16). Products of two fixed-point numbers and their sums are exact in the int32 accumulator (and in our fp32
  simulation of it for the sizes here), so the only errors are the roundings of the operands; results are
  written back in fp32.

In every mode the vector unit (pooling, elementwise ops, reductions, and with them the optimizer's vector
arithmetic) works in fp32, as mixed-precision training keeps master values in fp32: LBFGS's ``1 / yᵀs`` would
overflow half precision (max 65504) within a few steps.

Error bounds (tests hold the kernels to them): an operand rounded to ``bits`` has absolute error at most
``2^pos / 2``; fp16 rounding has relative error at most ``2^-11``.
"""

from __future__ import annotations

import math

import torch

QMAX = {"int8": 127, "int16": 32767}


def position(x: torch.Tensor, kind: str = "int8") -> int:
    """The per-tensor power-of-two position: the smallest ``pos`` with ``max|x| <= QMAX · 2^pos``."""
    amax = float(x.detach().abs().max()) if x.numel() else 0.0
    if amax == 0.0 or not math.isfinite(amax):
        return 0
    return math.ceil(math.log2(amax / QMAX[kind]))


def fixed_point(x: torch.Tensor, kind: str = "int8") -> torch.Tensor:
    """``x`` rounded to ``kind`` fixed point with its own power-of-two position (values, not integer codes)."""
    scale = 2.0 ** position(x, kind)
    q = QMAX[kind]
    return torch.clamp(torch.round(x / scale), -q - 1, q) * scale


def half(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to fp16 storage (kept in its dtype so fp32 accumulation follows)."""
    return x.to(torch.float16).to(x.dtype) if x.dtype != torch.float16 else x


def operand(x: torch.Tensor, mode: str, role: str = "activation") -> torch.Tensor:
    """An operand as the matrix unit sees it: ``role`` is ``activation``, ``weight`` or ``gradient``."""
    if mode == "fp16":
        return half(x)
    if mode == "int8":
        return fixed_point(x, "int16" if role == "gradient" else "int8")
    return x


def store(x: torch.Tensor, mode: str) -> torch.Tensor:
    """A result as written back to DRAM: half in fp16 mode; fp32 otherwise (int8 operands are re-quantized
    by the next matrix-unit consumer, with that tensor's own position)."""
    return half(x) if mode == "fp16" else x


def element_bytes(mode: str, role: str = "activation") -> int:
    """Bytes per element of a matrix-unit operand (DMA in, on-chip buffers), for the cost model."""
    if mode == "fp16":
        return 2
    if mode == "int8":
        return 2 if role == "gradient" else 1
    return 4


def store_bytes(mode: str) -> int:
    """Bytes per element of a stored result (see :func:`store`)."""
    return 2 if mode == "fp16" else 4


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
