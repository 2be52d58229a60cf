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

DTYPES = ("int8",)


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


def _write(output: Path, state: dict, result: CompressResult, score: bool, spec: str, config: str | None,
           sets: Sequence[str], probe: dict, int8: dict | None = None) -> CompressResult:
    """Save the artefact to a staged file, score it from there, then rename artefact and report into place."""
    with AtomicFiles() as files:
        staged = files.stage(output)
        torch.save(state, staged)
        if score:
            result.report = report_.score(spec, staged, config, sets, int8=int8, **probe)
            result.report["artefact"] = str(output)
            result.report_path = report_path(output)
            logs.write_json(result.as_dict(), files.stage(result.report_path))
    return result


def prune(output: str | Path, weights: str = "untrained", method: str = "l1-unstructured", amount: float = 0.3,
          layers: Sequence[str] | None = None, config: str | None = None, sets: Sequence[str] = (),
          score: bool = True, seed: int = 0, probe: dict | None = None) -> CompressResult:
    """``stylize prune``: prune the convs of ``layers`` (default: every conv the style model uses) by ``method``.

    Raises:
        StylizeError: bad method, amount, layer, weights or output; nothing is written then.
    """
    prune_.check_method(method)
    prune_.check_amount(amount)
    output = _check_output(output)
    _check_not_source(output, weights, score)
    net, info, spec = _source(weights, config, sets)
    targets = prune_.target_indices(net, layers)
    before = copy.deepcopy(net)
    structured = method == "l1-structured"
    if structured:
        net = prune_.prune_structured(net, targets, amount)
    else:
        prune_.prune_unstructured(net, targets, amount, method, seed)
    rows = prune_.table(before, net, targets)
    result = CompressResult(output, "pruned-structured" if structured else "pruned", str(info), info.warning, rows,
                            {**prune_.totals(rows), "method": method, "amount": amount})
    return _write(output, prune_.state_dict(net, structured), result, score, spec, config, sets, probe or {})


def quantize(output: str | Path, weights: str = "untrained", dtype: str = "int8", calibration: str | Path | None = None,
             config: str | None = None, sets: Sequence[str] = (), score: bool = True,
             probe: dict | None = None) -> CompressResult:
    """``stylize quantize``: static int8 PTQ of the style model's convs, calibrated on ``calibration`` images
    (default: the bundled demo pair).

    Raises:
        StylizeError: bad dtype, calibration folder, weights or output; nothing is written then.
    """
    if dtype not in DTYPES:
        raise StylizeError(f"--dtype {dtype!r} is not supported; use {', '.join(DTYPES)}.")
    output = _check_output(output)
    _check_not_source(output, weights, score)
    images = quantize_.calibration_images(calibration)
    net, info, spec = _source(weights, config, sets)
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
    return _write(output, quantize_.state_dict(q), result, score, spec, config, sets, probe or {}, int8=q)
