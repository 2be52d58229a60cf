"""Static post-training int8 quantization of VGG19's convs, with torchao's PT2E flow, and int8 inference from it.

The seed's ``torch.quantization.quantize_dynamic(model, {nn.Conv2d}, torch.qint8)`` changes nothing (dynamic
quantization has no conv kernel) and ``torch.ao.quantization`` is deprecated. Here:

1. :func:`calibrate`: ``torch.export`` the normalization + features, ``prepare_pt2e`` with torchao's
   ``X86InductorQuantizer`` (per-channel symmetric int8 weights, per-tensor affine uint8 activations with
   histogram observers), run the calibration images, ``convert_pt2e``. From the converted graph we read, for
   each conv, its int8 weights, per-output-channel scales and its input's scale and zero point.
2. The artefact (:func:`state_dict`) is a plain dict of tensors (``torch.load(weights_only=True)``):
   ``features.N.weight_int8`` (int8), ``.weight_scale`` (Cout, float32), ``.bias`` (float32),
   ``.input_scale`` / ``.input_zero_point`` (0-d). About 1/4 of the fp32 file.
3. Uses: :func:`int8_features` rebuilds an inference net whose convs run oneDNN's int8 kernel
   (``onednn::qconv2d_pointwise``, uint8 activations x int8 weights, fp32 out) -- feature extraction only, no
   autograd; :func:`dequantized_features` gives float weights ``q * scale`` for ``stylize run`` (LBFGS needs
   gradients through the net; activations stay float there); :func:`qparams` feeds dlp-sim's int8 mode.
"""

from __future__ import annotations

import contextlib
import logging
import operator
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import cpu, features, images
from ..demo import demo_pair
from ..errors import StylizeError

FORMAT = "int8"  # the value of ``stylize_format`` in an int8 file
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CALIBRATION_SIZE = 128  # calibration images are scaled and centre-cropped to this square


@contextlib.contextmanager
def _quiet_torchao():
    """torchao 0.18 logs a deprecation notice from torch's pytree at import; it is not the user's concern."""
    logger = logging.getLogger("torch.utils._pytree")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def calibration_images(folder: str | Path | None, size: int = CALIBRATION_SIZE) -> list[torch.Tensor]:
    """(1, 3, size, size) images in [0, 1]: every image in ``folder``, or the bundled demo pair."""
    if folder is None:
        paths = list(demo_pair())
    else:
        folder = Path(folder)
        if not folder.is_dir():
            raise StylizeError(f"--calibration {folder}: not a folder. Give a folder of images (jpg, png...).")
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise StylizeError(f"--calibration {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}). "
                               "Add a few typical photos and paintings, or omit --calibration for the demo pair.")
    return [images.to_tensor(images.resize_cover(images.load_image(p), size, size)) for p in paths]


def _attr(gm: nn.Module, node) -> torch.Tensor:
    return operator.attrgetter(node.target)(gm)


def calibrate(net: nn.Sequential, calibration: Sequence[torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """Static PTQ of ``net``'s convs; returns ``{features index: {weight_int8, weight_scale, bias, input_scale,
    input_zero_point}}`` read from the converted PT2E graph."""
    try:
        with _quiet_torchao():
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
            from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
                X86InductorQuantizer, get_default_x86_inductor_quantization_config)
    except ImportError:
        raise StylizeError("stylize quantize needs torchao (PT2E quantization): pip install 'stylize[compress]' "
                           "(or pip install torchao==0.18.0).") from None

    model = nn.Sequential(features.Normalization(), *net).eval()  # the style model sees normalized images
    with torch.no_grad():
        exported = torch.export.export(model, (calibration[0],)).module()
        quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        for image in calibration:
            prepared(image)
        converted = convert_pt2e(prepared)
    convs = [n for n in converted.graph.nodes if n.target == torch.ops.aten.conv2d.default]
    indices = [i for i, m in enumerate(net) if isinstance(m, nn.Conv2d)]
    if len(convs) != len(indices):
        raise RuntimeError(f"PT2E graph has {len(convs)} convs, the net {len(indices)}")  # a bug, not user error
    out = {}
    for index, node in zip(indices, convs):
        x_dq, w_dq, bias = node.args[:3]
        w_scale, w_zp = _attr(converted, w_dq.args[1]), _attr(converted, w_dq.args[2])
        assert not w_zp.any(), "x86 weights are symmetric"
        out[index] = {"weight_int8": _attr(converted, w_dq.args[0]).to(torch.int8).contiguous(),
                      "weight_scale": w_scale.float().contiguous(),
                      "bias": _attr(converted, bias).detach().float().contiguous(),
                      "input_scale": torch.tensor(float(x_dq.args[1])),
                      "input_zero_point": torch.tensor(int(x_dq.args[2]))}
    return out


def state_dict(q: dict[int, dict[str, torch.Tensor]]) -> dict:
    """The int8 artefact: a flat dict of tensors, tagged ``stylize_format: int8``."""
    state: dict = {"stylize_format": FORMAT}
    for index, params in q.items():
        for key, value in params.items():
            state[f"features.{index}.{key}"] = value
    return state


def qparams(state: dict, source: str = "int8 file") -> dict[int, dict[str, torch.Tensor]]:
    """Back from :func:`state_dict`: ``{features index: params}``, every field checked (key, dtype, shape, finite
    values) against VGG19's layer table before anything is allocated from it."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key == "stylize_format":
            continue
        parts = key.split(".") if isinstance(key, str) else []
        if len(parts) != 3 or parts[0] != "features" or not parts[1].isdigit() or not isinstance(value, torch.Tensor):
            raise StylizeError(f"{source} is not a valid int8 file: unexpected entry {str(key)[:60]!r}. "
                               "Quantize again with `stylize quantize`.")
        out.setdefault(int(parts[1]), {})[parts[2]] = value
    shapes = features.conv_shapes()
    fields = {"weight_int8", "weight_scale", "bias", "input_scale", "input_zero_point"}
    for index, params in out.items():
        where = f"{source} is not a valid int8 file: conv features.{index}"
        if index not in shapes:
            raise StylizeError(f"{source} is not a valid int8 file: features.{index} is no VGG19 conv. "
                               "Quantize again with `stylize quantize`.")
        if set(params) != fields:
            raise StylizeError(f"{where} has {sorted(params)}, not {sorted(fields)}. Quantize again with `stylize quantize`.")
        cout = shapes[index][0]
        expected = {"weight_int8": (shapes[index], (torch.int8,)),
                    "weight_scale": ((cout,), (torch.float32, torch.float64, torch.float16, torch.bfloat16)),
                    "bias": ((cout,), (torch.float32, torch.float64, torch.float16, torch.bfloat16)),
                    "input_scale": ((), (torch.float32, torch.float64)),
                    "input_zero_point": ((), (torch.int64, torch.int32, torch.uint8))}
        for name, (shape, dtypes) in expected.items():
            t = params[name]
            if tuple(t.shape) != shape or t.dtype not in dtypes or t.layout != torch.strided:
                raise StylizeError(f"{where}: {name} is {t.dtype} {tuple(t.shape)}, expected "
                                   f"{dtypes[0]} {shape}. Quantize again with `stylize quantize`.")
        for name in ("weight_scale", "bias", "input_scale"):
            t = params[name]
            if not bool(torch.isfinite(t).all()) or (name != "bias" and not bool((t > 0).all())):
                raise StylizeError(f"{where}: {name} holds non-finite{'' if name == 'bias' else ' or non-positive'} "
                                   "values. Quantize again with `stylize quantize`.")
        if not 0 <= int(params["input_zero_point"]) <= 255:
            raise StylizeError(f"{where}: input_zero_point {int(params['input_zero_point'])} is outside 0..255 (uint8). "
                               "Quantize again with `stylize quantize`.")
    return dict(sorted(out.items()))


def dequantize(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Float weights ``q * scale`` (per output channel): what the int8 kernel multiplies by, in fp32."""
    return params["weight_int8"].float() * params["weight_scale"].view(-1, 1, 1, 1)


def _check_reach(q: dict, upto: int, source: str) -> None:
    needed = [e.index for e in features.LAYERS[: upto + 1] if e.kind == "conv"]
    missing = [i for i in needed if i not in q]
    if missing:
        raise StylizeError(f"{source} holds int8 convs up to {features.LAYERS[max(q)].name if q else 'none'}; this "
                           f"run needs {features.LAYERS[missing[-1]].name}. Quantize with a config (-c) whose layers reach it.")


def dequantized_features(q: dict, upto: int, pooling: str, source: str = "int8 file") -> nn.Sequential:
    """VGG19 features up to ``upto`` with the dequantized (fake-quant) weights: float, differentiable."""
    _check_reach(q, upto, source)
    net = features.vgg19_features(upto, pooling)
    with torch.no_grad():
        for i, m in enumerate(net):
            if isinstance(m, nn.Conv2d):
                if m.weight.shape != q[i]["weight_int8"].shape:
                    raise StylizeError(f"{source}: conv features.{i} has shape {tuple(q[i]['weight_int8'].shape)}, "
                                       f"VGG19 needs {tuple(m.weight.shape)}.")
                m.weight.copy_(dequantize(q[i]))
                m.bias.copy_(q[i]["bias"])
    return net


def int8_kernel_available() -> bool:
    """Whether this torch has oneDNN's quantized conv (x86/aarch64 CPU builds with mkldnn)."""
    return cpu.int8_kernel_available()


def activation_bits() -> int:
    """8, or 7 where the int8 kernel's int16 pair sums would saturate: 2 x 127 x 128 = 32512 fits int16, 2 x 255 x
    128 does not (the reason x86 quantizers offer ``reduce_range``)."""
    return 7 if cpu.int8_pairs_saturate() else 8


def quantize_activation(x: torch.Tensor, scale: float, zero_point: int, qmax: int = 255) -> torch.Tensor:
    """uint8 codes in [0, qmax] of ``x`` with a per-tensor scale and zero point (saturating)."""
    return torch.clamp(torch.round(x / scale) + zero_point, 0, qmax).to(torch.uint8)


def reduce_range(scale: float, zero_point: int, bits: int) -> tuple[float, int, int]:
    """The artefact's 8-bit activation (scale, zero point) moved to ``bits`` bits over the same float range:
    (scale, zero point, qmax). The artefact stays one portable file; the machine picks its range at load."""
    qmax = 2**bits - 1
    if bits == 8:
        return scale, zero_point, qmax
    return scale * 255 / qmax, min(qmax, max(0, round(zero_point * qmax / 255))), qmax


class Int8Conv(nn.Module):
    """A 3x3 conv run by oneDNN's int8 kernel: input quantized with its calibrated (scale, zero point) to uint8,
    per-channel int8 weights, int32 accumulation, fp32 out (+ bias, optionally + ReLU).

    ``bits``: the activations' width, 8, or 7 on CPUs whose kernel saturates at 8 (:func:`activation_bits`,
    the default); ``x_scale``, ``x_zp`` and ``qmax`` are the ones in use.
    """

    def __init__(self, params: dict[str, torch.Tensor], relu: bool = False, bits: int | None = None):
        super().__init__()
        self.bits = activation_bits() if bits is None else bits
        self.x_scale, self.x_zp, self.qmax = reduce_range(float(params["input_scale"]),
                                                          int(params["input_zero_point"]), self.bits)
        self.relu = relu
        self.register_buffer("w_scale", params["weight_scale"].float())
        self.register_buffer("w_zp", torch.zeros(len(params["weight_scale"]), dtype=torch.int64))
        self.register_buffer("bias", params["bias"].float())
        self.register_buffer("weight_ref", dequantize(params))  # for the reference path and the dlp path
        self.packed = (torch.ops.onednn.qconv_prepack(params["weight_int8"], self.w_scale, self.x_scale, self.x_zp,
                                                      [1, 1], [1, 1], [1, 1], 1, None)
                       if int8_kernel_available() else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = quantize_activation(x, self.x_scale, self.x_zp, self.qmax)
        if self.packed is None:  # no int8 kernel in this build: the same arithmetic in fp32 (reference)
            y = F.conv2d((xq.float() - self.x_zp) * self.x_scale, self.weight_ref, self.bias, padding=1)
            return y.relu_() if self.relu else y
        return torch.ops.onednn.qconv2d_pointwise(
            xq.contiguous(memory_format=torch.channels_last), self.x_scale, self.x_zp, self.packed, self.w_scale,
            self.w_zp, self.bias, [1, 1], [1, 1], [1, 1], 1, 1.0, 0, torch.float32,
            "relu" if self.relu else "none", [], "")


def int8_features(q: dict, upto: int, pooling: str = "max", fuse_relu: bool = True,
                  source: str = "int8 file", activation_bits: int | None = None) -> nn.Sequential:
    """Inference-only VGG19 features up to ``upto`` on int8 kernels (input: a *normalized* image).

    With ``fuse_relu`` each conv followed by its ReLU becomes one kernel (the ReLU becomes an Identity, so
    indices still match ``features``; a caller that needs pre-ReLU outputs passes ``fuse_relu=False``).
    ``activation_bits``: None picks 8, or 7 where the kernel would saturate (:func:`activation_bits`).
    """
    _check_reach(q, upto, source)
    plain = features.vgg19_features(upto, pooling)
    net = nn.Sequential()
    skip = False
    for i, m in enumerate(plain):
        if isinstance(m, nn.Conv2d):
            fuse = fuse_relu and i + 1 < len(plain) and isinstance(plain[i + 1], nn.ReLU)
            net.add_module(str(i), Int8Conv(q[i], relu=fuse, bits=activation_bits))
            skip = fuse
        else:
            net.add_module(str(i), nn.Identity() if skip else m)
            skip = False
    return net.eval()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``||a - b|| / ||b||``."""
    return float((a - b).norm() / b.norm().clamp_min(1e-30))
