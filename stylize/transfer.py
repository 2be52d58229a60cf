"""One style-transfer run, end to end: config -> images -> weights -> style model -> LBFGS -> files.

:func:`run` is what ``stylize run`` calls; :func:`stylize` is the same for Python users.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import devices, features, fused, images, logs, losses, weights as weights_
from .config import MIN_SIZE, Config, build_config, resolve_recipe
from .errors import StylizeError
from .optimize import OptimizeResult, StepRecord, optimize
from .outputs import AtomicFiles
from .weights import WeightsInfo, load_features

log = logging.getLogger("stylize")

CPU_OVERHEAD_BYTES = 700 * 2**20  # RSS of `import stylize` alone (torch, CUDA-build libraries): 656 MiB measured


@dataclass
class RunResult:
    """What a run produced. ``paths`` is empty when nothing was written (``write=False``)."""

    image: torch.Tensor  # (1, 3, H, W) in [0, 1], on the CPU
    history: list[StepRecord]
    config: Config  # resolved (size filled in)
    weights: WeightsInfo
    device: str
    status: str = "completed"  # completed | converged | diverged | interrupted (Ctrl-C)
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float | None] = field(default_factory=dict)
    profile: Any = None  # dlp-sim: the device profile (stylize.dlp.Profile: .table(), .as_dict()); else None

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"


def demo_pair() -> tuple[Path, Path]:
    """The bundled demo images (drawn by scripts/make_assets.py)."""
    root = resources.files("stylize.assets")
    return Path(str(root / "content.jpg")), Path(str(root / "style.jpg"))


def default_output(content: Path, style: Path) -> Path:
    return Path("outputs") / f"{content.stem}__{style.stem}.png"


def estimate_bytes(height: int, width: int, cut: int, lbfgs_history: int, device: torch.device) -> int:
    """Peak memory of a run at this image size, from the layer table (float32).

    Counts weights, every activation up to the cut (autograd keeps them for backward), max-pool indices
    (int64), two activation-sized gradient buffers, Gram matrices, LBFGS history (2 vectors of the image per
    entry) and, on the CPU, the torch runtime. A 40 % margin covers allocator slack (measured: 2.76 GiB peak RSS
    for the seed's layers at 682x512 with a full LBFGS history; this gives 2.91 GiB).
    """
    floats, params, in_ch, largest, grams = 3 * height * width, 0, 3, 0, 0
    for entry in features.LAYERS[: cut + 1]:
        stride = 2 ** entry.pools_before
        n = entry.channels * (height // stride) * (width // stride)
        floats += n * (3 if entry.kind == "pool" else 1)  # pool indices are int64 = 2 floats
        largest = max(largest, n)
        if entry.kind == "conv":
            params += entry.channels * (in_ch * 9 + 1)
            in_ch = entry.channels
            grams += 3 * entry.channels**2  # target, input gram, its gradient (upper bound: one per conv)
    image_vectors = (2 * lbfgs_history + 6) * 3 * height * width
    total = 4 * (params + floats + 2 * largest + grams + image_vectors)
    return int(total * 1.4) + (CPU_OVERHEAD_BYTES if device.type == "cpu" else 0)


def _check_size(width: int, height: int, cfg: Config, cut: int, device: torch.device) -> None:
    """Refuse, before allocating anything, a size the layers cannot take or the device cannot hold."""
    pools = features.LAYERS[cut].pools_before
    if min(height, width) < 2**pools:
        raise StylizeError(f"size {cfg.size} is too small: layer {features.LAYERS[cut].name} sits after {pools} poolings, "
                           f"so the shorter edge must be at least {2**pools} px. Use --size {max(2**pools, 64)} or more.")
    free = devices.available_memory(device)
    need = estimate_bytes(height, width, cut, cfg.lbfgs_history, device)
    if free is None or need <= free:
        return

    def fits(size: int) -> bool:
        w, h = images.shorter_edge_size(width, height, size)
        return estimate_bytes(h, w, cut, cfg.lbfgs_history, device) <= free

    low, high = max(MIN_SIZE, 2**pools), cfg.size  # binary search for the largest size that fits
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    hint = f"The largest size that fits is about {low}: use --size {low}." if fits(low) else "Free some memory first."
    raise StylizeError(f"size {cfg.size} ({width}x{height} px) needs about {need / 2**30:.1f} GiB on {device}, "
                       f"only {free / 2**30:.1f} GiB is free. {hint}")


def _init_image(cfg: Config, content: torch.Tensor) -> torch.Tensor:
    if cfg.init == "noise":
        gen = torch.Generator().manual_seed(cfg.seed)  # CPU generator: the same noise on every device
        return torch.randn(content.shape, generator=gen).to(content.device)
    if cfg.init == "content":
        return content.clone()
    _, _, h, w = content.shape  # an image file (the config checked that it exists)
    return images.to_tensor(images.resize_cover(images.load_image(cfg.init), w, h)).to(content.device)


COARSE_SHARE, COARSE_MAX = 6, 50  # the coarse stage runs steps // 6 evaluations, at most 50


def _coarse_stage(cfg: Config, net, content: torch.Tensor, style: torch.Tensor, image: torch.Tensor,
                  cut: int) -> OptimizeResult | None:
    """Coarse to fine: ``steps // 6`` evaluations (at most 50) at half the size; the change they made, upsampled,
    is added to the full-size init (so a content or image init keeps its fine detail).

    At half size an evaluation costs a quarter and the large structures settle first; the full-size run then
    starts near a good point (measured at 128 px: the seed's best loss of 300 evaluations reached after 90
    full-size evaluations instead of 155). The losses of this stage are not in the history: they are of
    another size. Returns the optimization result with ``image`` at full size, or None when the half size is
    too small for the layers.
    """
    _, _, height, width = content.shape
    half = (height // 2, width // 2)
    steps = min(cfg.steps // COARSE_SHARE, COARSE_MAX)
    if steps < 1 or min(half) < max(MIN_SIZE, 2 ** features.LAYERS[cut].pools_before):
        return None
    shrink = lambda x: F.interpolate(x, size=half, mode="bilinear", antialias=True, align_corners=False)
    small_content, small_style, small_init = shrink(content), shrink(style), shrink(image.clamp(0, 1))
    model, content_losses, style_losses = features.build_style_model(
        net, small_content, small_style, cfg.content_layers, cfg.style_layers)
    if cfg.normalize == "targets":
        losses.normalize_by_targets([*content_losses, *style_losses])
    model = fused.fuse(model, small_content, small_style)
    result = optimize(model, content_losses, style_losses, small_init.clone(), project=True,
                      **{**_lbfgs(cfg), "steps": steps})
    if result.history:
        log.info("coarse stage: %d evaluations at %dx%d px, loss %.4g -> %.4g", len(result.history), half[1], half[0],
                 result.history[0].total, result.history[-1].total)
    change = F.interpolate(result.image - small_init, size=(height, width), mode="bilinear", align_corners=False)
    result.image = (image.clamp(0, 1) + change).clamp_(0, 1)
    return result


def _lbfgs(cfg: Config) -> dict[str, Any]:
    """The optimization settings of ``cfg``, as :func:`optimize` takes them."""
    return {"steps": cfg.steps, "style_weight": cfg.style_weight, "content_weight": cfg.content_weight,
            "max_iter": cfg.lbfgs_max_iter, "history_size": cfg.lbfgs_history,
            "line_search": None if cfg.lbfgs_line_search == "none" else cfg.lbfgs_line_search}


def _check_outputs(paths: dict[str, Path], cfg: Config, inputs: list[Path]) -> None:
    """No output may overwrite an input (the image, or a log beside it) or land on a folder."""
    inputs = inputs + [Path(p) for p in (cfg.init, cfg.weights) if Path(p).is_file()]
    for kind, path in paths.items():
        if path.is_dir():
            raise StylizeError(f"cannot write {path}: a folder of that name exists. Remove it or choose another -o.")
        for given in inputs:
            if path.exists() and given.exists() and path.samefile(given):
                raise StylizeError(f"the {kind} output {path} is the input {given}; refusing to overwrite it. Choose another -o.")


def run(cfg: Config, on_step: Callable[[StepRecord], None] | None = None, write: bool = True) -> RunResult:
    """Stylize ``cfg.content`` with ``cfg.style``; write the image and logs unless ``write`` is False.

    Raises:
        StylizeError: for anything the user can fix; nothing is written in that case.
    """
    t0 = time.perf_counter()
    device = devices.resolve(cfg.device)
    profile = _dlp_configure(cfg) if device.type == "dlp" else None
    size = cfg.size or (512 if device.type == "cuda" else 128)
    demo_content, demo_style = demo_pair()
    content_path = Path(cfg.content) if cfg.content else demo_content
    style_path = Path(cfg.style) if cfg.style else demo_style
    output = images.check_output_path(cfg.output or default_output(content_path, style_path))
    # From here on the config says what was actually used (run.json records it).
    cfg = dataclasses.replace(cfg, size=size, device="dlp-sim" if device.type == "dlp" else str(device), content=str(content_path), style=str(style_path),
                              output=str(output))
    paths = {"image": output, **logs.log_paths(output)}
    if cfg.profile:
        paths["profile"] = Path(f"{output.with_suffix('')}.dlp-profile.json")
    _check_outputs(paths, cfg, [content_path, style_path])

    content_pil, style_pil = images.load_image(content_path), images.load_image(style_path)
    # Which weights `auto` means decides the recipe (and so the layers, the cut and the size check).
    spec, fallback = weights_.resolve(cfg.weights)
    cfg = resolve_recipe(cfg, untrained_fallback=fallback is not None)
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    width, height = images.shorter_edge_size(content_pil.width, content_pil.height, size)
    _check_size(width, height, cfg, cut, device)
    try:
        content_img = images.to_tensor(images.resize_shorter(content_pil, size)).to(device)
        style_img = images.to_tensor(images.resize_cover(style_pil, width, height)).to(device)
        image = _init_image(cfg, content_img)
        net, weights = load_features(spec, cut, cfg.pooling)
        if fallback is not None:
            weights = dataclasses.replace(weights, warning=weights_.fallback_warning(fallback, cfg.recipe))
        if weights.warning:
            log.warning(weights.warning)
        log.info("weights: %s; recipe: %s; device: %s; image: %dx%d px; %d steps", weights, cfg.recipe,
                 devices.describe(device), width, height, cfg.steps)
        if profile is not None and weights.qparams:  # calibrated int8 for the targets too (see below)
            _dlp_calibrate(net.to(device), weights.qparams, quiet=True)
        model, content_losses, style_losses = features.build_style_model(
            net.to(device).eval(), content_img, style_img, cfg.content_layers, cfg.style_layers)
        if cfg.normalize == "targets":  # once, here: the loop runs the plain weighted losses
            losses.normalize_by_targets([*content_losses, *style_losses])
        if profile is not None:
            profile = _dlp_start(model)
            if weights.qparams:  # an int8 artefact: dlp-sim's int8 mode uses its calibrated scales
                _dlp_calibrate(net, weights.qparams)
        fast = not cfg.exact and device.type != "dlp"  # the CPU/CUDA fast path; dlp-sim fuses for itself
        t1 = time.perf_counter()
        coarse = _coarse_stage(cfg, net, content_img, style_img, image, cut) if fast else None
        t_coarse = time.perf_counter()
        if coarse is not None and coarse.interrupted:
            result = OptimizeResult(image=coarse.image, interrupted=True)
        else:
            image = image if coarse is None else coarse.image
            if fast:
                model = fused.fuse(model, content_img, style_img)
            result = optimize(model, content_losses, style_losses, image, project=fast, on_step=on_step, **_lbfgs(cfg))
    except torch.cuda.OutOfMemoryError:  # the size check is an estimate; on the CPU the OS would step in first
        raise StylizeError(f"out of memory on {device} at size {size}. Use a smaller --size.") from None
    t2 = time.perf_counter()
    if result.diverged:
        log.warning("the loss became inf/NaN at step %d; stopped and kept the last image with a finite loss. "
                    "Lower --style-weight / --content-weight.", len(result.history) + 1)
    out = RunResult(image=result.image.cpu(), history=result.history, config=cfg, weights=weights,
                    device=devices.describe(device), status=result.status, profile=profile)
    if profile is not None:
        profile.steps, profile.host_s = len(result.history), t2 - t1
    per_step = [b.seconds - a.seconds for a, b in zip(result.history, result.history[1:])]
    out.timings = {"setup_s": t1 - t0, "coarse_s": t_coarse - t1, "optimize_s": t2 - t_coarse,
                   "median_step_s": statistics.median(per_step) if per_step else None}
    if write:
        with _interrupts_ignored():
            _write(out, paths, content_path, style_path)
        out.paths = paths
    out.timings["total_s"] = time.perf_counter() - t0
    return out


@contextlib.contextmanager
def _interrupts_ignored():
    """Ignore Ctrl-C (and SIGTERM) while the finished result is written (a second or two, mostly matplotlib's
    import): losing a finished run to an impatient keypress is worse than a short wait."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _write(out: RunResult, paths: dict[str, Path], content: Path, style: Path) -> None:
    final = out.history[-1] if out.history else None
    summary: dict[str, Any] = {
        "status": out.status,
        "steps_run": len(out.history),
        "final_losses": dataclasses.asdict(final) if final else None,
        "content": str(content), "style": str(style),
        "image_size": list(out.image.shape[-1:-3:-1]),  # [W, H]
        "outputs": {k: str(v) for k, v in paths.items()},
        "device": out.device, "weights": out.weights.as_dict(), "recipe": out.config.recipe,
        "timings": out.timings, "versions": logs.versions(),
        "config": dataclasses.asdict(out.config),
    }
    with AtomicFiles() as files:
        images.save_image(out.image, files.stage(paths["image"]), paths["image"])
        logs.write_csv(out.history, files.stage(paths["csv"]))
        logs.write_json(summary, files.stage(paths["json"]))
        # Always written (empty when no step had a finite loss), so no stale plot of an earlier run remains.
        logs.plot_losses(out.history, files.stage(paths["plot"]), title=f"{content.name} x {style.name}")
        if "profile" in paths:
            logs.write_json(out.profile.as_dict(), files.stage(paths["profile"]))


def _dlp_configure(cfg: Config):
    from . import dlp

    return dlp.configure(cfg.dlp_spec, cfg.dlp_mode)


def _dlp_start(model: torch.nn.Module):
    """Fuse conv+ReLU pairs for the device and start the profile afresh: it covers the optimization only."""
    from . import dlp

    dlp.fuse_conv_relu(model)
    rt = dlp.current()
    return dlp.configure(rt.spec, rt.mode)


def _dlp_calibrate(net: torch.nn.Module, qparams: dict, quiet: bool = False) -> None:
    """dlp-sim's int8 mode: quantize these convs with the artefact's calibrated scales (a fresh profile, as
    ``_dlp_start`` makes, forgets them: call again after it)."""
    from . import dlp

    n = dlp.runtime.calibrate([(net[i].weight, q) for i, q in qparams.items() if i < len(net)])
    if not quiet:
        log.info("dlp-sim: calibrated int8 scales for %d convs%s", n, "" if dlp.current().mode == "int8" else
             " (used only with --dlp-mode int8)")


def stylize(
    content: str | Path | None = None,
    style: str | Path | None = None,
    output: str | Path | None = None,
    *,
    config: Config | str | Path | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    write: bool = True,
    **overrides: Any,
) -> RunResult:
    """Python API for ``stylize run``.

    Args:
        content, style: image paths (None = the bundled demo pair).
        output: where to write the image (logs go beside it); None = outputs/<content>__<style>.png.
        config: a Config, or a YAML file path, to start from (default: the seed's recipe).
        on_step: called with each StepRecord (one per closure evaluation).
        write: False to only return the result.
        **overrides: any Config field, e.g. ``steps=50, size=256, weights="untrained"``.

    Example:
        >>> from stylize import stylize
        >>> result = stylize("photo.jpg", "painting.jpg", "out.png", steps=100)
        >>> result.history[-1].total
    """
    base = dataclasses.asdict(config) if isinstance(config, Config) else {}
    file = config if isinstance(config, (str, Path)) else None
    given = {k: str(v) for k, v in {"content": content, "style": style, "output": output}.items() if v is not None}
    cfg = build_config(file, overrides={**base, **given, **overrides})
    return run(cfg, on_step=on_step, write=write)
