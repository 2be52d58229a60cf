"""Scoring a compressed network by what it does to stylization, the same for every artefact.

A probe run (the bundled demo pair, ``size`` px, ``steps`` evaluations, a fixed seed) is stylized twice by
``transfer.run``: once with the original weights, once with the compressed ones. Both results are then scored
with the *original* network's losses (its style model, its targets): quality retained = loss of the original's
result / loss of the compressed result (1.0 = as good; above 1 = the compressed net's result scores better).
Time per evaluation (forward + losses + backward, ``stylize bench``'s own ``_Ours``) is measured for both nets,
interleaved, medians. For int8 artefacts, int8 feature extraction is also timed against fp32 and its error
measured on the probe.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import bench, cpu, devices, features, losses
from ..config import Config, build_config
from ..transfer import run
from ..weights import load_features
from . import quantize
from .config import PROBE_SIZE, PROBE_STEPS

TIMING_REPEAT = 5


def fp32_bytes(net: nn.Sequential) -> int:
    """Size of ``net``'s weights saved as an fp32 features state_dict (the yardstick for file sizes)."""
    buffer = io.BytesIO()
    torch.save({f"features.{k}": v for k, v in net.state_dict().items()}, buffer)
    return buffer.getbuffer().nbytes


def probe_config(config: str | None, sets: Sequence[str], weights: str, size: int, steps: int) -> Config:
    return build_config(config, sets, {"weights": weights, "size": size, "steps": steps, "device": "cpu", "seed": 0})


def weighted_loss(net: nn.Sequential, cfg: Config, content: torch.Tensor, style: torch.Tensor,
                  image: torch.Tensor) -> dict[str, float]:
    """``image``'s weighted content + style loss under ``net`` and ``cfg`` (the seed's loss, as ``run`` uses it)."""
    model, content_losses, style_losses = features.build_style_model(
        net, content, style, cfg.content_layers, cfg.style_layers)
    if cfg.normalize == "targets":
        losses.normalize_by_targets([*content_losses, *style_losses])
    with torch.no_grad():
        model(image.clamp(0, 1))
    c = float(sum(m.loss for m in content_losses)) * cfg.content_weight
    s = float(sum(m.loss for m in style_losses)) * cfg.style_weight
    return {"content": c, "style": s, "total": c + s}


def _interleaved(fns: dict[str, Any], repeat: int) -> dict[str, list[float]]:
    """Time each callable ``repeat`` times after one warm-up, alternating, so machine noise hits all alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _summary(times: dict[str, list[float]], base: str, other: str) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in times.items()}
    return {f"{base}_median_s": med[base], f"{other}_median_s": med[other], "speedup": med[base] / med[other],
            f"{base}_s": times[base], f"{other}_s": times[other]}


def score(original: str, compressed: str | Path, config: str | None = None, sets: Sequence[str] = (),
          size: int = PROBE_SIZE, steps: int = PROBE_STEPS, repeat: int = TIMING_REPEAT,
          int8: dict | None = None) -> dict[str, Any]:
    """Stylize the probe with ``original`` and ``compressed`` weights and score both with the original's losses.

    Args:
        original: the ``--weights`` spec that was compressed (``untrained``, ``imagenet``, a path).
        compressed: the path of the artefact.
        config, sets: the config (``-c``) and ``--set`` items of the probe runs.
        int8: for an int8 artefact, its ``{index: params}``: adds int8 feature-extraction time and error.

    Returns:
        The report as a JSON-ready dict.
    """
    runs = {name: run(probe_config(config, sets, spec, size, steps), write=False)
            for name, spec in (("original", original), ("compressed", str(compressed)))}
    cfg = runs["original"].config  # resolved: recipe, layers
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    net, _ = load_features(original, cut, cfg.pooling)
    small, _ = load_features(str(compressed), cut, cfg.pooling)
    content, style = bench._images(size, torch.device("cpu"))
    scores = {name: weighted_loss(net.eval(), cfg, content, style, r.image) for name, r in runs.items()}
    report: dict[str, Any] = {
        "probe": {"content": cfg.content, "style": cfg.style, "size": size, "image": list(content.shape[-1:-3:-1]),
                  "steps": steps, "seed": cfg.seed, "recipe": cfg.recipe, "config": config or "default",
                  "weights": original, "note": "both results scored with the ORIGINAL network's losses"},
        "loss_of_original_result": scores["original"],
        "loss_of_compressed_result": scores["compressed"],
        "quality_retained": scores["original"]["total"] / scores["compressed"]["total"],
        "status": {name: r.status for name, r in runs.items()},
        "cpu": cpu.report(),  # timings, and int8 results, depend on it
    }
    compressed_bytes = Path(compressed).stat().st_size
    original_bytes = fp32_bytes(net)
    report["file_bytes"] = {"original_fp32": original_bytes, "compressed": compressed_bytes,
                            "ratio": compressed_bytes / original_bytes}
    backend = devices.resolve("cpu")
    evals = {name: bench._Ours(backend, n, content, style, cfg) for name, n in (("original", net), ("compressed", small))}
    report["eval_time"] = _summary(_interleaved(evals, repeat), "original", "compressed")
    report["eval_time"]["what"] = "one evaluation (forward + losses + backward), fp32, bench's path"
    if int8 is not None:
        report["int8_inference"] = int8_inference(net, int8, cut, cfg.pooling, content, repeat)
    return report


def int8_inference(net: nn.Sequential, q: dict, cut: int, pooling: str, image: torch.Tensor,
                   repeat: int = TIMING_REPEAT) -> dict[str, Any]:
    """Feature extraction (normalization + convs up to ``cut``, no autograd) on fp32 vs the int8 kernels:
    time (interleaved medians) and the int8 output's relative error on ``image``, with the activation width
    this CPU needs (7 bits where its int8 kernel saturates, see :mod:`stylize.cpu`) and the ISA."""
    x = features.Normalization()(image)
    fp32 = net.eval()
    int8 = quantize.int8_features(q, cut, pooling)
    with torch.no_grad():
        error = quantize.relative_error(int8(x), fp32(x))
        times = _interleaved({"fp32": lambda: fp32(x), "int8": lambda: int8(x)}, repeat)
    out = _summary(times, "fp32", "int8")
    bits = quantize.activation_bits()
    out.update(relative_error=error, kernel=f"onednn::qconv2d_pointwise (uint{bits} x int8, fp32 out)"
               if quantize.int8_kernel_available() else "reference fp32 (no oneDNN int8 kernel in this build)",
               activation_bits=bits, cpu=cpu.report(), threads=torch.get_num_threads())
    return out
