"""The stage loop: coarse to fine, each stage's objective built by the backend, then optimized.

Each stage starts from the previous stage's result: the change it made to its (downsized) init, upsampled and
added to this stage's init, so a content or image init keeps its fine detail. The loop builds no model itself:
the backend (:mod:`stylize.devices`) turns each stage's images into an :class:`~stylize.objective.Objective`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import images, schedule
from .callbacks import RunHooks
from .config import Config
from .devices import Backend
from .optimize import LoopState, OptimizeResult, StepRecord, optimize
from .regions import Regions
from .schedule import Stage

log = logging.getLogger("stylize")


@dataclass
class StagesResult:
    result: OptimizeResult  # the last stage's (its image is the run's image)
    history: list[StepRecord] = field(default_factory=list)  # every evaluation of every stage
    events: list[str] = field(default_factory=list)  # what the blow-up guard did


def init_image(cfg: Config, content: torch.Tensor) -> torch.Tensor:
    """The image the optimization starts from, at the content's size: ``noise | content | gray | PATH``."""
    if cfg.init == "noise":
        gen = torch.Generator().manual_seed(cfg.seed)  # CPU generator: the same noise on every device
        return torch.randn(content.shape, generator=gen).to(content.device)
    if cfg.init == "content":
        return content.clone()
    if cfg.init == "gray":
        return torch.full_like(content, 0.5)
    _, _, h, w = content.shape  # an image file (the config checked that it exists)
    return images.to_tensor(images.resize_cover(images.load_image(cfg.init), w, h)).to(content.device)


def loop_settings(cfg: Config, stage: Stage | None = None) -> dict[str, Any]:
    """The optimization settings of ``cfg``, as :func:`optimize` takes them (less ``steps``); a stage's memory
    plan may shorten the LBFGS history."""
    history = stage.history if stage is not None and stage.history else cfg.lbfgs_history
    return {"optimizer": cfg.optimizer, "lr": cfg.lr, "max_iter": cfg.lbfgs_max_iter, "history_size": history,
            "line_search": None if cfg.lbfgs_line_search == "none" else cfg.lbfgs_line_search,
            "blowup_factor": cfg.blowup_factor, "plateau_tol": cfg.plateau_tol, "plateau_window": cfg.plateau_window}


def run_stages(backend: Backend, net: nn.Module, cfg: Config, content_pil, style_pils, stages: list[Stage],
               init: torch.Tensor, hooks: RunHooks, project: bool, first: int = 0, history: list[StepRecord] | None = None,
               resumed: LoopState | None = None, regions: Regions | None = None) -> StagesResult:
    """Optimize ``stages`` in turn (from stage ``first`` when resuming, with the ``history`` before it and the
    loop state ``resumed`` inside it). ``init`` is the run's init at the final size. ``regions``: the run's region
    masks (:mod:`stylize.regions`), carried to each stage's size.

    Ctrl-C while a stage is set up ends the run as if in a step, with the last stage's image; before any step,
    it propagates (nothing to keep).
    """
    history = list(history or [])
    previous, result, events = None, None, []
    try:
        for k, stage in enumerate(stages):
            if k < first:
                continue
            content_img, style_imgs = schedule.stage_images(cfg, content_pil, style_pils, stage, backend.device)
            masks = schedule.stage_regions(cfg, regions, stage, backend.device)
            objective = None  # the last stage's (its targets) before this one's are made
            objective = backend.objective(net, content_img, style_imgs, cfg, regions=masks, tile=stage.tile)
            del style_imgs  # the objective holds their Gram matrices: at 4096 px each image is 0.14 GiB
            stage_init = schedule.resize(init if k == len(stages) - 1 else init.clamp(0, 1), stage)
            if previous is None:
                image = stage_init.clone()
            else:  # the change the coarser stage made, upsampled: a content or image init keeps its detail
                change = F.interpolate(previous[0] - previous[1], size=(stage.height, stage.width),
                                       mode="bilinear", align_corners=False)
                image = (stage_init.clamp(0, 1) + change).clamp_(0, 1)
            hooks.start_stage(k, history, objective.plain, content_img, image)
            result = optimize(objective, image, steps=stage.steps, project=project,
                              first_step=len(history) + 1, size=stage.size,
                              elapsed=history[-1].seconds if history else 0.0,
                              resume=resumed if k == first else None, on_step=hooks.step,
                              on_boundary=hooks.boundary if hooks.checkpoints else None, **loop_settings(cfg, stage))
            history, events = history + result.history, events + result.events
            previous = (result.image, stage_init)
            if result.status in ("interrupted", "diverged"):
                break
            if k < len(stages) - 1 and result.history:
                log.info("stage %d/%d: %d evaluations at %dx%d px, loss %.4g -> %.4g%s", k + 1, len(stages),
                         len(result.history), stage.width, stage.height, result.history[0].total,
                         (result.output or result.history[-1]).total,
                         f" ({result.stop_reason})" if result.stop_reason else "")
    except KeyboardInterrupt:  # while a stage was set up: stop as in a step, with the last stage's image
        if previous is None or not history:
            raise  # no step done: nothing to keep
        result = OptimizeResult(image=previous[0], interrupted=True)
    return StagesResult(result, history, events)
