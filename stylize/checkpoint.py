"""Checkpoints: a run's state between two optimizer steps, saved so that ``stylize run --resume`` continues
bit for bit (the seed's checkpoint slides: image, optimizer state, step, losses, and here the config and a hash
of the inputs, so a checkpoint is never resumed into a different run).

A checkpoint is one ``torch.save`` file of plain tensors, numbers, strings, lists and dicts (loaded with
``weights_only=True``): ``<stem>.ckpt`` beside the output image.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from . import regions
from .config import Config
from .errors import StylizeError
from .optimize import LoopState, StepRecord
from .outputs import AtomicFiles
from .weights import safe_load, sha256

log = logging.getLogger("stylize")

FORMAT = "stylize-checkpoint/1"
# Keys that only say where and how often to write: they may differ between a run and its resumption.
UNCOMPARED = ("output", "log_every", "save_every", "checkpoint_every", "tensorboard", "profile",
              "max_memory")  # the checkpoint's memory plan is kept


def path_for(output: Path) -> Path:
    return Path(f"{output.with_suffix('')}.ckpt")


def digest(paths: Iterable[str | Path]) -> dict[str, str]:
    """sha256 of each input file: a resumed run must read the very same images (and weights file)."""
    return {str(Path(p).resolve()): sha256(Path(p)) for p in paths if Path(p).is_file()}


PATHS = ("content", "style", "init", "weights", "output",
         "background_style", "seg", "style_coarse", "style_fine")  # config keys that may hold file paths


def portable(cfg: Config) -> Config:
    """``cfg`` with its file paths absolute, so that ``--resume`` works from any folder (and writes where the
    run wrote). Keywords such as ``init: noise`` stay as they are."""
    def absolute(value: str) -> str:
        return str(Path(value).resolve()) if Path(value).is_file() or value == cfg.output else value

    changes = {k: (None if v is None else [absolute(x) for x in v] if isinstance(v, list) else absolute(v))
               for k, v in ((k, getattr(cfg, k)) for k in PATHS)}
    for key in ("regions", "seg_colors"):  # MASK=STYLE@MAP:WEIGHT items (issue 20)
        if getattr(cfg, key):
            changes[key] = [regions.with_paths(item, absolute, key) for item in getattr(cfg, key)]
    return dataclasses.replace(cfg, **changes)


def save(path: Path, cfg: Config, inputs: Mapping[str, str], weights: str, stage: int, earlier: list[StepRecord],
         state: LoopState, plan: dict[str, Any] | None = None) -> bool:
    """Write the checkpoint atomically: ``earlier`` are the records of the stages before ``stage``; ``weights``
    is what ``cfg.weights`` resolved to (``auto`` can mean ImageNet on one day and untrained on another).

    A checkpoint that cannot be written (a full disk) is a warning, not the end of the run: returns False, and
    the previous checkpoint, if any, stays as it was.
    """
    data = _plain({
        "format": FORMAT,
        "config": dataclasses.asdict(cfg),
        "inputs": dict(inputs),
        "stage": stage,
        "earlier": [dataclasses.asdict(r) for r in earlier],
        "loop": {**{f.name: getattr(state, f.name) for f in dataclasses.fields(LoopState)},
                 "history": [dataclasses.asdict(r) for r in state.history],
                 "best": None if state.best is None else dataclasses.asdict(state.best)},
        "weights": weights,
        "plan": plan,  # the memory plan (stylize/plan.py): a resumed run evaluates as this one did
    })
    reason = None
    try:
        with AtomicFiles() as files:
            staged = files.stage(path)
            try:
                torch.save(data, staged)
            except (OSError, RuntimeError) as e:  # torch's zip writer reports a failed write as a RuntimeError
                reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0][:160]
                raise
    except (StylizeError, OSError, RuntimeError) as e:
        log.warning("checkpoint %s not saved (%s); the run goes on, and the previous checkpoint, if any, is kept.",
                    path, reason or str(e).removesuffix("."))
        return False
    return True


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint; anything else is one StylizeError line."""
    path = Path(path)
    if not path.is_file():
        raise StylizeError(f"checkpoint not found: {path}. Give the <stem>.ckpt a run with --checkpoint-every wrote.")
    try:
        data = safe_load(path)
    except Exception:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StylizeError(f"{path} is not a stylize checkpoint ({FORMAT}). Give the <stem>.ckpt a run wrote.")
    problem = _problem(data)
    if problem:
        raise StylizeError(f"{path} is a damaged stylize checkpoint: {problem}. Start the run afresh.")
    return data


MAX_STAGES = 64  # more than any schedule has (a ladder from 128 px to MAX_SIZE has 18)
RECORD_FIELDS = {f.name for f in dataclasses.fields(StepRecord)}
LOOP_FIELDS = {f.name for f in dataclasses.fields(LoopState)}


def _problem(data: Mapping[str, Any]) -> str | None:
    """What is wrong with a checkpoint's structure (None: nothing): every key, type, shape and value that
    resuming relies on, checked before any of it is used."""
    if set(data) - {"plan"} != {"format", "config", "inputs", "stage", "earlier", "loop", "weights"}:
        return f"keys {sorted(map(str, data))}"
    plan = data.get("plan")
    if plan is not None and not (isinstance(plan, dict) and isinstance(plan.get("stages"), list)
                                 and all(isinstance(s, dict) and _whole(s.get("history"), 1)
                                         and (s.get("tile") is None or _whole(s.get("tile"), 1)) for s in plan["stages"])
                                 and _whole(plan.get("budget_bytes"), 0)):
        return "memory plan"
    if not isinstance(data["config"], dict) or not all(isinstance(k, str) for k in data["config"]):
        return "config is not a mapping"
    if not isinstance(data["inputs"], dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                       for k, v in data["inputs"].items()):
        return "inputs are not file: sha256 pairs"
    if not isinstance(data["weights"], str):
        return "weights is not a name"
    if not _whole(data["stage"], 0, MAX_STAGES):
        return f"stage is not a whole number in 0..{MAX_STAGES}"
    loop = data["loop"]
    if not isinstance(loop, dict) or set(loop) != LOOP_FIELDS:
        return "loop state keys"
    records = [*_list(data["earlier"]), *_list(loop["history"]), *([] if loop["best"] is None else [loop["best"]])]
    if data["earlier"] is None or loop["history"] is None or not all(_record(r) for r in records):
        return "step records are not step records"
    image = loop["image"]
    if not (isinstance(image, torch.Tensor) and image.dtype == torch.float32 and image.dim() == 4
            and image.shape[:2] == (1, 3) and image.numel() > 0 and bool(torch.isfinite(image).all())):
        return "the image is not a finite float32 (1, 3, H, W) tensor"
    best = loop["best_image"]
    if best is not None and not (isinstance(best, torch.Tensor) and best.shape == image.shape
                                 and best.dtype == image.dtype and bool(torch.isfinite(best).all())):
        return "the best image does not match the image"
    if not (_whole(loop["restarts"], 0) and _whole(loop["over"], 0) and isinstance(loop["converged"], bool)
            and isinstance(loop["events"], list) and all(isinstance(e, str) for e in loop["events"])):
        return "loop counters"
    return _optimizer_problem(loop["optimizer"], image.numel())


def _optimizer_problem(state: Any, numel: int) -> str | None:
    """An optimizer state_dict over the one image parameter: its tensors are scalars or image-sized, finite."""
    if not isinstance(state, dict):
        return "optimizer state is not a mapping"
    if not state:
        return None  # no step taken yet
    groups = state.get("param_groups")
    if set(state) != {"state", "param_groups"} or not isinstance(groups, list) or len(groups) != 1 \
            or not isinstance(groups[0], dict) or groups[0].get("params") != [0] or not isinstance(state["state"], dict) \
            or not set(state["state"]) <= {0}:
        return "optimizer state is not one for the image alone"
    for t in _tensors(state["state"]):
        if t.numel() not in (1, numel) or not bool(torch.isfinite(t).all()):
            return f"an optimizer tensor of {t.numel()} values (the image has {numel}), or non-finite"
    return None


def _tensors(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, list):
        for v in value:
            yield from _tensors(v)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else [None]


def _whole(value: Any, low: int, high: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def _record(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == RECORD_FIELDS and _whole(value["step"], 0) and _whole(value["size"], 0)
            and all(isinstance(value[k], (int, float)) and not isinstance(value[k], bool)
                    for k in RECORD_FIELDS - {"step", "size"}))


def check(data: Mapping[str, Any], cfg: Config, inputs: Mapping[str, str], weights: str, path: str | Path) -> None:
    """Refuse to resume into a run that differs from the checkpoint's: a config key, the weights ``auto``
    resolved to, or an input file."""
    saved = data["config"]
    diffs = [f"{k}: {saved.get(k)!r} in the checkpoint, {v!r} now"
             for k, v in dataclasses.asdict(portable(cfg)).items() if k not in UNCOMPARED and saved.get(k) != v]
    if data["weights"] != weights:
        diffs.append(f"weights: {cfg.weights} meant {data['weights']} in the checkpoint, {weights} now")
    diffs += [f"{name} changed since the checkpoint (sha256 {old[:12]} -> {inputs.get(name, 'missing')[:12]})"
              for name, old in data["inputs"].items() if inputs.get(name) != old]
    if diffs:
        raise StylizeError(f"cannot resume {path}: the run differs from the checkpoint's: {'; '.join(diffs)}. "
                           "Resume with the same settings and inputs, or start a new run.")


def loop_state(data: Mapping[str, Any], device: torch.device) -> tuple[int, list[StepRecord], LoopState]:
    """The stage to continue, the records of the stages before it, and the loop's state (on ``device``)."""
    loop = dict(data["loop"])
    to = lambda t: None if t is None else t.to(device)
    state = LoopState(image=to(loop["image"]), optimizer=_to(loop["optimizer"], device),
                      history=[StepRecord(**r) for r in loop["history"]], best_image=to(loop["best_image"]),
                      best=None if loop["best"] is None else StepRecord(**loop["best"]), restarts=loop["restarts"],
                      events=list(loop["events"]), over=loop["over"], converged=loop["converged"])
    return data["stage"], [StepRecord(**r) for r in data["earlier"]], state


def _plain(value: Any) -> Any:
    """Tensors as plain CPU tensors (a device's tensor subclass would not load with ``weights_only``)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().as_subclass(torch.Tensor)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_to(v, device) for v in value]
    return value
