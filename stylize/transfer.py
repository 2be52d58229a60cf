"""One style-transfer run, end to end: config -> images -> weights -> backend -> stages -> files.

:func:`run` is what ``stylize run`` calls; :func:`stylize` is the same for Python users.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn.functional as F

from . import (checkpoint, colors, devices, features, images, memory, plan as plan_, regions, results, schedule,
               weights as weights_)
from .callbacks import Callbacks, RunHooks, StepFunction
from .config import Config, build_config, resolve_recipe, stage_of
from .demo import default_output, demo_pair
from .errors import StylizeError
from .optimize import StepRecord
from .outputs import interrupts_ignored
from .results import RunResult
from .stages import init_image, run_stages
from .weights import load_features

log = logging.getLogger("stylize")


def run(cfg: Config, callbacks: Callbacks | None = None, write: bool = True,
        resume: str | Path | None = None) -> RunResult:
    """Stylize ``cfg.content`` with ``cfg.style``; write the image and logs unless ``write`` is False.

    ``callbacks`` hears the schedule and every step (:class:`Callbacks`). ``resume``: a checkpoint
    (``<stem>.ckpt``) of this same run to continue; ``cfg`` must equal its config (:func:`checkpoint.check`),
    which :func:`stylize` and the CLI arrange by building ``cfg`` on top of it.

    Raises:
        StylizeError: for anything the user can fix; nothing is written in that case.
    """
    t0 = time.perf_counter()
    callbacks = callbacks or Callbacks()
    backend = devices.resolve(cfg.device, cfg)
    listed = [stage_of(e)[0] for e in cfg.scales] if isinstance(cfg.scales, list) else []
    size = cfg.size or (listed[-1] if listed else 512 if backend.device.type == "cuda" else 128)
    demo_content, demo_style = demo_pair()
    content_path = Path(cfg.content) if cfg.content else demo_content
    content_pil = images.load_image(content_path)
    masks, region_styles = _regions(cfg, content_pil)
    style_paths = ([Path(p) for p in region_styles] if region_styles else [Path(p) for p in cfg.style] if cfg.style
                   else [demo_style])
    output = images.check_output_path(cfg.output or default_output(content_path, style_paths))
    # From here on the config says what was actually used (run.json records it).
    cfg = dataclasses.replace(cfg, size=size, device=backend.name, content=str(content_path),
                              style=[str(p) for p in style_paths], output=str(output))
    paths = results.output_paths(output, cfg)
    ckpt_path = checkpoint.path_for(output)
    results.check_outputs({**paths, **({"checkpoint": ckpt_path} if cfg.checkpoint_every else {})}, cfg,
                          [content_path, *style_paths])

    style_pils = [images.load_image(p) for p in style_paths]
    # Which weights `auto` means decides the recipe (and so the layers, the cut and the size check).
    spec, fallback = weights_.resolve(cfg.weights)
    cfg = resolve_recipe(cfg, untrained_fallback=fallback is not None)
    if cfg.style_palette and not (cfg.original_colors or cfg.match_histogram):  # the photo in the painting's colours
        content_pil = (regions.palette(content_pil, style_pils, masks) if masks is not None else  # region by region
                       images.to_pil(colors.style_palette(images.to_tensor(content_pil),
                                                          [images.to_tensor(p) for p in style_pils])))
    mask_files = regions.input_files(cfg.regions, cfg.seg, cfg.seg_colors)
    inputs = (checkpoint.digest([content_path, *style_paths, *mask_files, cfg.init, cfg.weights])
              if cfg.checkpoint_every or resume else {})
    saved = checkpoint.load(resume) if resume else None
    if saved is not None:
        checkpoint.check(saved, cfg, inputs, spec, resume)
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    width, height = images.shorter_edge_size(content_pil.width, content_pil.height, size)
    if not backend.fast_path:  # dlp-sim: its own memory model; no host-side plan
        memory.check_size(width, height, cfg, cut, backend.device)
    # The recipe is the device's to run, not to choose: coarse to fine and the projection unless `exact` (the
    # seed's loop); the backend picks the kernels (its fast path unless `exact`).
    fast = not cfg.exact
    stages = schedule.plan(cfg, content_pil.width, content_pil.height, cut, fast)  # sizes as resize_shorter makes them
    for stage in stages:
        schedule.check_style_size(cfg, stage, cut)
    mem_plan = None
    if backend.fast_path:  # whole-image or tiled per stage, the LBFGS history; a resumed run keeps its own plan
        memory.check_layers(width, height, cfg, cut)
        mem_plan = (plan_.Plan.from_dict(saved["plan"]) if saved is not None and saved.get("plan")
                    else plan_.make(stages, cfg, cut, backend.device, (content_pil.width, content_pil.height)))
        stages = mem_plan.apply(stages)
    callbacks.plan(stages)
    first, history, resumed = (0, [], None) if saved is None else checkpoint.loop_state(saved, backend.device)
    if first >= len(stages):
        raise StylizeError(f"{resume}: the checkpoint is at stage {first + 1}, but this run has {len(stages)} "
                           "stage(s); it was not saved by this run. Remove --resume to start afresh.")
    hooks = RunHooks(cfg, paths["image"], ckpt_path, {"inputs": inputs, "weights": spec,
                                                                   "plan": mem_plan and mem_plan.as_dict()}, write, callbacks)
    try:
        net, weights = load_features(spec, cut, cfg.pooling)
        net = backend.prepare(net, weights.qparams)
        if fallback is not None:
            weights = dataclasses.replace(weights, warning=weights_.fallback_warning(fallback, cfg.recipe))
        if weights.warning:
            log.warning(weights.warning)
        log.info("weights: %s; recipe: %s; device: %s; image: %dx%d px; %s", weights, cfg.recipe,
                 backend.describe(), width, height,
                 " then ".join(f"{s.steps} steps at {s.width}x{s.height}" for s in stages))
        for p in mem_plan.stages if mem_plan is not None and any(p.tile for p in mem_plan.stages) else ():
            log.info("plan: %s", p.describe())  # only when tiled: the whole-image plan is the usual run
        if resumed is not None:
            log.info("resuming %s at step %d", resume, len(history) + len(resumed.history))
        content_full = images.to_tensor(images.resize_shorter(content_pil, size)).to(backend.device)
        init = init_image(cfg, content_full)
        if not cfg.original_colors:  # not needed again: one image-sized tensor less held through the run
            content_full = None
        t1 = time.perf_counter()
        with backend.deterministic():
            done = run_stages(backend, net, cfg, content_pil, style_pils, stages, init, hooks, project=fast,
                              first=first, history=history, resumed=resumed, regions=masks)
    except backend.out_of_memory:  # the size check is an estimate; on the CPU the OS would step in first
        raise StylizeError(f"out of memory on {backend.name} at size {size}. Use a smaller --size.") from None
    finally:
        hooks.close()
    t2 = time.perf_counter()
    result, history, events = done.result, done.history, done.events
    if result.interrupted:
        with interrupts_ignored():
            hooks.save_last_checkpoint()
    if result.diverged and not events:
        log.warning("the loss became inf/NaN at step %d; stopped and kept the last image with a finite loss. "
                    "Lower --style-weight / --content-weight.", len(history) + 1)
    final = result.image
    if result.image.shape[-2:] != (height, width):  # stopped in a coarser stage: the image at the output size
        final = F.interpolate(final, size=(height, width), mode="bilinear", align_corners=False).clamp_(0, 1)
    if cfg.original_colors:
        final = colors.original_colors(final, content_full)
    out = RunResult(image=final.cpu(), history=history, config=cfg, weights=weights, device=backend.describe(),
                    status=result.status, profile=backend.finish(len(history), t2 - t1),
                    output_losses=result.output, events=events, stop_reason=result.stop_reason,
                    plan=mem_plan and mem_plan.as_dict())
    per_step = [b.seconds - a.seconds for a, b in zip(history, history[1:]) if a.size == b.size == size]
    out.timings = {"setup_s": t1 - t0, "optimize_s": t2 - t1,
                   "median_step_s": statistics.median(per_step) if per_step else None}
    if write:
        with interrupts_ignored():
            results.write(out, paths)
        out.paths = paths
    out.timings["total_s"] = time.perf_counter() - t0
    return out


def _regions(cfg: Config, content_pil) -> tuple[regions.Regions | None, list[str]]:
    """The run's region masks (read and checked) and the style images they name, in order; or, with
    ``style_coarse``/``style_fine``, no masks and [coarse, fine]. ``style`` must then be left out (or list exactly
    those images, as a resumed run's saved config does)."""
    if cfg.style_coarse is not None:
        masks, styles, flags = None, [cfg.style_coarse, cfg.style_fine], "--style-coarse/--style-fine"
    elif cfg.regions or cfg.seg:
        masks = regions.load(content_pil, cfg.regions, cfg.seg, cfg.seg_colors, cfg.background_style, cfg.mask_erode)
        styles, flags = masks.styles, "--region/--seg-colors/--background-style"
    else:
        return None, []
    if cfg.style and [Path(p).resolve() for p in cfg.style] != [Path(p).resolve() for p in styles]:
        raise StylizeError(f"style: with {flags} the style images are given there; leave out the STYLE arguments "
                           f"(got {', '.join(cfg.style)}).")
    return masks, styles


def stylize(
    content: str | Path | None = None,
    style: str | Path | list[str | Path] | None = None,
    output: str | Path | None = None,
    *,
    config: Config | str | Path | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    write: bool = True,
    resume: str | Path | None = None,
    **overrides: Any,
) -> RunResult:
    """Python API for ``stylize run``.

    Args:
        content, style: image paths (None = the bundled demo pair); ``style`` may be a list (blended).
        output: where to write the image (logs go beside it); None = outputs/<content>__<style>.png.
        config: a Config, or a YAML file path, to start from (default: the seed's recipe).
        on_step: called with each StepRecord (one per closure evaluation).
        write: False to only return the result.
        resume: a checkpoint (``<stem>.ckpt``) to continue; its config is the base the other arguments
            override, and a difference that changes the result is refused.
        **overrides: any Config field, e.g. ``steps=50, size=256, weights="untrained"``.

    Example:
        >>> from stylize import stylize
        >>> result = stylize("photo.jpg", "painting.jpg", "out.png", steps=100)
        >>> result.history[-1].total
    """
    base = dataclasses.asdict(config) if isinstance(config, Config) else {}
    file = config if isinstance(config, (str, Path)) else None
    given = {k: str(v) for k, v in {"content": content, "output": output}.items() if v is not None}
    if style is not None:
        given["style"] = [str(s) for s in style] if isinstance(style, (list, tuple)) else [str(style)]
    saved = checkpoint.load(resume)["config"] if resume else None
    cfg = build_config(file, overrides={**base, **given, **overrides}, base=saved)
    return run(cfg, callbacks=StepFunction(on_step) if on_step else None, write=write, resume=resume)
