"""What ``stylize prune`` and ``stylize quantize`` do, callable from Python: load the weights the config's style
model uses, compress them, write the artefact and its ``<out>.report.json`` all-or-nothing.

The artefact covers VGG19's features up to the config's last loss layer (``-c``; the seed's layers by default:
conv_1..conv_5); ``stylize run`` with a deeper config than the one it was made for says so.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import features, logs, weights as weights_
from ..config import build_config
from ..errors import StylizeError
from ..outputs import AtomicFiles
from . import prune as prune_, quantize as quantize_, report as report_
from .config import DTYPES, PruneConfig, QuantizeConfig

@dataclass
class CompressResult:
    output: Path
    kind: str  # pruned | pruned-structured | int8
    weights: str  # what was compressed (WeightsInfo as text)
    warning: str | None = None  # e.g. `auto` fell back to untrained weights
    rows: list[Any] = field(default_factory=list)  # prune: LayerRow per conv; quantize: dicts per conv
    totals: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    report_path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        rows = [r.as_dict() if hasattr(r, "as_dict") else r for r in self.rows]
        return {"output": str(self.output), "kind": self.kind, "weights": self.weights, "warning": self.warning,
                "layers": rows,
                "totals": self.totals, "score": self.report}


def report_path(output: Path) -> Path:
    return Path(f"{output.with_suffix('')}.report.json")


def _check_output(output: str | Path) -> Path:
    output = Path(output)
    if output.suffix.lower() not in (".pt", ".pth"):
        raise StylizeError(f"-o {output}: the artefact is a PyTorch file; give a name ending in .pt or .pth.")
    if output.is_dir():
        raise StylizeError(f"cannot write {output}: a folder of that name exists. Choose another -o.")
    return output


def _check_not_source(output: Path, spec: str, score: bool) -> None:
    """The artefact (or its report) must not replace the weights it is made from, as ``run`` refuses for its inputs."""
    source = Path(spec)
    if spec in ("auto", "imagenet", "untrained") or not source.is_file():
        return
    for kind, path in (("artefact", output), ("report", report_path(output) if score else None)):
        if path is not None and path.exists() and path.samefile(source):
            raise StylizeError(f"the {kind} {path} is the weights file it is made from ({spec}); refusing to "
                               "overwrite it. Choose another -o.")


def _source(spec: str, config: str | None, sets: Sequence[str]):
    """The features the config's style model uses, loaded from ``spec``; and the resolved cut and pooling."""
    cfg = build_config(config, sets, {"weights": spec})
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    resolved, fallback = weights_.resolve(cfg.weights)
    net, info = weights_.load_features(resolved, cut, cfg.pooling)
    if fallback is not None:
        info.warning = (f"ImageNet VGG19 weights unavailable ({fallback}); compressing UNTRAINED random weights. "
                        "Fix: `stylize weights import vgg19-dcbb9e9d.pth`, or say --weights untrained.")
    if info.kind in ("pruned-structured", "int8"):
        raise StylizeError(f"{spec} is already compressed ({info.kind}); give the original weights.")
    return net.eval(), info, resolved


def _write(output: Path, state: dict, result: CompressResult, spec: str, cfg: PruneConfig | QuantizeConfig,
           int8: dict | None = None) -> CompressResult:
    """Save the artefact to a staged file, score it from there, then rename artefact and report into place."""
    with AtomicFiles() as files:
        staged = files.stage(output)
        torch.save(state, staged)
        if cfg.report:
            result.report = report_.score(spec, staged, cfg.config, cfg.sets, size=cfg.probe_size,
                                          steps=cfg.probe_steps, int8=int8)
            result.report["artefact"] = str(output)
            result.report_path = report_path(output)
            logs.write_json(result.as_dict(), files.stage(result.report_path))
    return result


def prune(cfg: PruneConfig) -> CompressResult:
    """``stylize prune``: prune the convs of ``cfg.layers`` (default: every conv the style model uses) by
    ``cfg.method``.

    Raises:
        StylizeError: bad method, amount, layer, weights or output; nothing is written then.
    """
    method, amount = cfg.method, cfg.amount
    prune_.check_method(method)
    prune_.check_amount(amount)
    output = _check_output(cfg.output)
    _check_not_source(output, cfg.weights, cfg.report)
    net, info, spec = _source(cfg.weights, cfg.config, cfg.sets)
    targets = prune_.target_indices(net, list(cfg.layers) or None)
    before = copy.deepcopy(net)
    structured = method == "l1-structured"
    if structured:
        net = prune_.prune_structured(net, targets, amount)
    else:
        prune_.prune_unstructured(net, targets, amount, method, cfg.seed)
    rows = prune_.table(before, net, targets)
    result = CompressResult(output, "pruned-structured" if structured else "pruned", str(info), info.warning, rows,
                            {**prune_.totals(rows), "method": method, "amount": amount})
    return _write(output, prune_.state_dict(net, structured), result, spec, cfg)


def quantize(cfg: QuantizeConfig) -> CompressResult:
    """``stylize quantize``: static int8 PTQ of the style model's convs, calibrated on ``cfg.calibration``
    images (default: the bundled demo pair).

    Raises:
        StylizeError: bad dtype, calibration folder, weights or output; nothing is written then.
    """
    if cfg.dtype not in DTYPES:
        raise StylizeError(f"--dtype {cfg.dtype!r} is not supported; use {', '.join(DTYPES)}.")
    output = _check_output(cfg.output)
    _check_not_source(output, cfg.weights, cfg.report)
    calibration = cfg.calibration
    images = quantize_.calibration_images(calibration)
    net, info, spec = _source(cfg.weights, cfg.config, cfg.sets)
    q = quantize_.calibrate(net, images)
    rows = []
    for index, params in q.items():
        entry = features.LAYERS[index]
        w = net[index].weight.detach()
        rows.append({"layer": f"{entry.name} ({entry.paper_name})", "shape": list(w.shape),
                     "weight_scale_min": float(params["weight_scale"].min()),
                     "weight_scale_max": float(params["weight_scale"].max()),
                     "weight_error": quantize_.relative_error(quantize_.dequantize(params), w),
                     "input_scale": float(params["input_scale"]), "input_zero_point": int(params["input_zero_point"])})
    totals = {"convs": len(q), "calibration_images": len(images),
              "calibration": str(calibration) if calibration else "bundled demo pair",
              "params": sum(net[i].weight.numel() + net[i].bias.numel() for i in q)}
    result = CompressResult(output, "int8", str(info), info.warning, rows, totals)
    return _write(output, quantize_.state_dict(q), result, spec, cfg, int8=q)
