"""Coarse to fine: the sizes a run optimizes at (``scales``), and each stage's images.

Each stage starts from the previous stage's result: the change it made to its (downsized) init, upsampled and
added to this stage's init, so a content or image init keeps its fine detail (see :func:`stages.run_stages`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import colors, features, images
from .config import MIN_SIZE, Config, stage_of
from .errors import StylizeError
from .regions import Regions, StageRegions


@dataclass
class Stage:
    """One size of a coarse-to-fine schedule."""

    size: int  # shorter edge
    width: int
    height: int
    steps: int
    tile: int | None = None  # the memory plan (stylize/plan.py): tiled evaluation with this interior size, or None
    history: int | None = None  # ...and the LBFGS history; None: lbfgs_history
    tiles: int = 1  # ...and the tiles an evaluation runs (progress display)


COARSE_SHARE, COARSE_MAX = 6, 50  # scales: auto runs steps // 6 evaluations at half size, at most 50...
COARSE_MIN = 64  # ...when half size is at least this (measured at 40 px: a 20 px stage made the end 1.3x worse)
AUTO_BASE = 768  # ...of the base: the size halved until it is at most this (1024x768, 0.8 MP); above the base...
AUTO_MIN_STEPS = 10  # ...each doubling runs steps x (base / its size)^2 evaluations, at least this many
LADDER_MIN = 128  # scales: ladder starts at the first size of size / sqrt(2)^k not below this


def plan(cfg: Config, width: int, height: int, cut: int, fast: bool) -> list[Stage]:
    """The sizes a run optimizes at, coarse to fine; the last is ``cfg.size``, with ``cfg.steps`` evaluations up to
    768 px.

    ``auto`` on the fast path: ``steps // 6`` evaluations (at most 50) at half size first, when that is at
    least 64 px, then ``steps`` at ``size``. At half size an evaluation costs a quarter and the large structures
    settle first, so the full-size run starts near a good point (measured at 128 px: the seed's best loss of 300
    evaluations reached after 90 full-size evaluations instead of 155). Above ``AUTO_BASE`` (768 px) the same
    two stages run at the *base*, ``size`` halved until it is at most 768 px, and the size then doubles up to
    ``size``, each doubling running ``steps x (base / its size)^2`` evaluations (at least 10): every stage above
    the base costs about what ``steps`` evaluations at the base cost, so a 4096 px run (``--size 3072``: 384,
    768, 1536 then 3072 px with 50, 300, 75 and 19 evaluations) costs about three 1024 px runs, and the finest
    stages, which start from the upsampled result of the one before, only add the detail of their size
    (Gatys et al. 2017, "Controlling Perceptual Factors", coarse to fine at high resolution; Galerne et al.
    2022). With ``plateau_tol`` every stage may stop earlier. ``ladder``: sizes ``size / sqrt(2)^k`` down to
    128 px, ``steps`` each. A list: those sizes, ``steps`` each unless given as ``SIZE:STEPS``. Sizes too small
    for the layers are dropped.
    """
    smallest = max(MIN_SIZE, 2 ** features.LAYERS[cut].pools_before)
    if cfg.scales == "none" or (cfg.scales == "auto" and not fast):
        plan = [(cfg.size, cfg.steps)]
    elif cfg.scales == "auto":
        plan = _auto(cfg.size, cfg.steps)
    elif cfg.scales == "ladder":
        k = 1
        while round(cfg.size / 2 ** (k / 2)) >= LADDER_MIN:
            k += 1
        plan = [(round(cfg.size / 2 ** (j / 2)), cfg.steps) for j in range(k - 1, -1, -1)]
    else:
        plan = [(size, cfg.steps if steps is None else steps) for size, steps in map(stage_of, cfg.scales)]
        if plan[-1][0] > cfg.size:
            raise StylizeError(f"scales: {plan[-1][0]} is larger than size {cfg.size}; the schedule ends at size. "
                               f"Use --size {plan[-1][0]} or smaller scales.")
        if plan[-1][0] == cfg.size:
            if plan[-1][1] != cfg.steps:
                raise StylizeError(f"scales: the last size, {cfg.size}, is the final size: it runs `steps` ({cfg.steps}) "
                                   "evaluations. Set them with --steps, not in scales.")
            plan.pop()
        plan.append((cfg.size, cfg.steps))
    stages = []
    for size, steps in plan:
        w, h = images.shorter_edge_size(width, height, size)
        if steps > 0 and min(w, h) >= smallest:
            stages.append(Stage(size, w, h, steps))
    return stages


def _auto(size: int, steps: int) -> list[tuple[int, int]]:
    """``scales: auto``'s (size, evaluations) from the coarse stage to ``size`` (see :func:`plan`)."""
    halvings = 0
    while round(size / 2**halvings) > AUTO_BASE:
        halvings += 1
    base = round(size / 2**halvings)
    out = [(base // 2, min(steps // COARSE_SHARE, COARSE_MAX))] if base // 2 >= COARSE_MIN else []
    out.append((base, steps))
    for k in range(halvings - 1, -1, -1):
        s = round(size / 2**k)
        out.append((s, max(AUTO_MIN_STEPS, round(steps * (base / s) ** 2))))
    return out


def style_size(cfg: Config, stage: Stage) -> tuple[int, int]:
    """The style images' (width, height) at ``stage``."""
    return max(1, round(stage.width * cfg.style_scale)), max(1, round(stage.height * cfg.style_scale))


def stage_images(cfg: Config, content_pil, style_pils, stage: Stage, device: torch.device):
    """The content image and the style images of one stage, on ``device``."""
    content = images.to_tensor(images.resize_shorter(content_pil, stage.size)).to(device)
    w, h = style_size(cfg, stage)
    styles = [images.to_tensor(images.resize_cover(p, w, h)).to(device) for p in style_pils]
    if cfg.match_histogram:
        styles = [colors.match_histogram(s, content) for s in styles]
    return content, styles


def stage_regions(cfg: Config, regions: Regions | None, stage: Stage, device: torch.device) -> StageRegions | None:
    """A run's region masks at ``stage``: over the content at its size, style maps at the style images' size
    (cropped as they are), so each stage's guided Grams see the same regions."""
    if regions is None:
        return None
    return regions.at(stage.width, stage.height, style_size(cfg, stage), device)


def resize(x: torch.Tensor, stage: Stage) -> torch.Tensor:
    if x.shape[-2:] == (stage.height, stage.width):
        return x
    return F.interpolate(x, size=(stage.height, stage.width), mode="bilinear", antialias=True, align_corners=False)


def check_style_size(cfg: Config, stage: Stage, cut: int) -> None:
    smallest = 2 ** features.LAYERS[cut].pools_before
    w, h = round(stage.width * cfg.style_scale), round(stage.height * cfg.style_scale)
    if min(w, h) < smallest:
        raise StylizeError(f"style_scale {cfg.style_scale:g} makes the style image {w}x{h} px at size {stage.size}; "
                           f"layer {features.LAYERS[cut].name} needs at least {smallest} px. Use a larger --style-scale.")
