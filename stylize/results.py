"""What a run produced, and its files: the output paths and their checks, and the all-or-nothing write of the
image with its logs (``<stem>.losses.csv``, ``<stem>.run.json``, ``<stem>.loss.png``, a device profile)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import images, logs
from .config import Config
from .errors import StylizeError
from .optimize import StepRecord
from .outputs import AtomicFiles, check_step_files
from .weights import WeightsInfo


@dataclass
class RunResult:
    """What a run produced. ``paths`` is empty when nothing was written (``write=False``)."""

    image: torch.Tensor  # (1, 3, H, W) in [0, 1], on the CPU
    history: list[StepRecord]
    config: Config  # resolved (size filled in)
    weights: WeightsInfo
    device: str
    status: str = "completed"  # completed | converged | diverged | interrupted (Ctrl-C)
    output_losses: StepRecord | None = None  # the losses of the output image (blow-up guard on), else None
    events: list[str] = field(default_factory=list)  # what the blow-up guard did
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float | None] = field(default_factory=dict)
    profile: Any = None  # dlp-sim: the device profile (stylize.dlp.Profile: .table(), .as_dict()); else None
    stop_reason: str | None = None  # why the last stage stopped early (status converged by the plateau rule)
    plan: dict[str, Any] | None = None  # the memory plan (stylize/plan.py: Plan.as_dict), None where none was made

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"


def output_paths(output: Path, cfg: Config) -> dict[str, Path]:
    """The files a run writes: the image, its logs beside it, and the device profile when asked for."""
    paths = {"image": output, **logs.log_paths(output)}
    if cfg.profile:  # the device profile, and the timeline of one evaluation (Chrome / Perfetto trace)
        paths["profile"] = Path(f"{output.with_suffix('')}.dlp-profile.json")
        paths["trace"] = Path(f"{output.with_suffix('')}.dlp-trace.json")
    return paths


def check_outputs(paths: dict[str, Path], cfg: Config, inputs: list[Path]) -> None:
    """No output may overwrite an input (the image, or a log beside it) or land on a folder."""
    inputs = inputs + [Path(p) for p in (cfg.init, cfg.weights) if Path(p).is_file()]
    for kind, path in paths.items():
        if path.is_dir():
            raise StylizeError(f"cannot write {path}: a folder of that name exists. Remove it or choose another -o.")
        for given in inputs:
            if path.exists() and given.exists() and path.samefile(given):
                raise StylizeError(f"the {kind} output {path} is the input {given}; refusing to overwrite it. Choose another -o.")
    check_step_files(paths["image"], cfg.save_every, inputs)


def write(out: RunResult, paths: dict[str, Path]) -> None:
    """Write the image and its logs all-or-nothing (:class:`AtomicFiles`)."""
    cfg = out.config
    content, styles = Path(cfg.content), [Path(s) for s in cfg.style]
    final = out.output_losses or (out.history[-1] if out.history else None)
    summary: dict[str, Any] = {
        "status": out.status,
        "stop_reason": out.stop_reason,
        "steps_run": len(out.history),
        "final_losses": dataclasses.asdict(final) if final else None,  # of the output image (the best, if guarded)
        "guard_events": out.events,
        "content": str(content), "style": [str(s) for s in styles],
        "image_size": list(out.image.shape[-1:-3:-1]),  # [W, H]
        "outputs": {k: str(v) for k, v in paths.items()},
        "device": out.device, "weights": out.weights.as_dict(), "recipe": cfg.recipe,
        "timings": out.timings, "plan": out.plan, "versions": logs.versions(),
        "config": dataclasses.asdict(cfg),
    }
    with AtomicFiles(keep_written=paths.values()) as files:  # the image first: a full disk keeps it
        images.save_image(out.image, files.stage(paths["image"]), paths["image"])
        logs.write_csv(out.history, files.stage(paths["csv"]))
        logs.write_json(summary, files.stage(paths["json"]))
        # Always written (empty when no step had a finite loss), so no stale plot of an earlier run remains.
        logs.plot_losses(out.history, files.stage(paths["plot"]), title=f"{content.name} x {' + '.join(s.name for s in styles)}")
        if "profile" in paths:
            logs.write_json(out.profile.as_dict(), files.stage(paths["profile"]))
            logs.write_json(out.profile.timeline(), files.stage(paths["trace"]))
