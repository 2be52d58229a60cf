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

from . import board, checkpoint, colors, devices, features, fused, images, logs, losses, schedule, weights as weights_
from .config import MIN_SIZE, Config, build_config, resolve_recipe, stage_of
from .errors import StylizeError
from .optimize import LoopState, OptimizeResult, StepRecord, optimize
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
    output_losses: StepRecord | None = None  # the losses of the output image (blow-up guard on), else None
    events: list[str] = field(default_factory=list)  # what the blow-up guard did
    stop_reason: str | None = None  # why the last stage stopped early (status converged by the plateau rule)
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


def default_output(content: Path, styles: list[Path]) -> Path:
    return Path("outputs") / f"{content.stem}__{'+'.join(s.stem for s in styles)}.png"


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


def setup_bytes(height: int, width: int, cut: int, style_area: float, device: torch.device) -> int:
    """Peak memory while the targets are computed: no autograd, so per image two activations are alive at a time
    (a layer's input and output); the content image and the style images (``style_area``: their summed area in
    units of the content's, ``n × style_scale²``) go through the network side by side."""
    params, in_ch, largest = 0, 3, 0
    for entry in features.LAYERS[: cut + 1]:
        stride = 2 ** entry.pools_before
        largest = max(largest, entry.channels * (height // stride) * (width // stride))
        if entry.kind == "conv":
            params += entry.channels * (in_ch * 9 + 1)
            in_ch = entry.channels
    total = 4 * (params + 2 * largest * (1 + style_area))
    return int(total * 1.4) + (CPU_OVERHEAD_BYTES if device.type == "cpu" else 0)


def _check_size(width: int, height: int, cfg: Config, cut: int, device: torch.device) -> None:
    """Refuse, before allocating anything, a size the layers cannot take or the device cannot hold."""
    pools = features.LAYERS[cut].pools_before
    if min(height, width) < 2**pools:
        raise StylizeError(f"size {cfg.size} is too small: layer {features.LAYERS[cut].name} sits after {pools} poolings, "
                           f"so the shorter edge must be at least {2**pools} px. Use --size {max(2**pools, 64)} or more.")
    free = devices.available_memory(device)
    style_area = len(cfg.style or [None]) * cfg.style_scale**2  # large style images weigh on the setup

    def need_at(w: int, h: int) -> int:
        return max(estimate_bytes(h, w, cut, cfg.lbfgs_history, device), setup_bytes(h, w, cut, style_area, device))

    need = need_at(width, height)
    if free is None or need <= free:
        return

    def fits(size: int) -> bool:
        return need_at(*images.shorter_edge_size(width, height, size)) <= free

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
    if cfg.init == "gray":
        return torch.full_like(content, 0.5)
    _, _, h, w = content.shape  # an image file (the config checked that it exists)
    return images.to_tensor(images.resize_cover(images.load_image(cfg.init), w, h)).to(content.device)


def _settings(cfg: Config) -> dict[str, Any]:
    """The optimization settings of ``cfg``, as :func:`optimize` takes them (less ``steps``)."""
    return {"style_weight": cfg.style_weight, "content_weight": cfg.content_weight, "tv_weight": cfg.tv_weight,
            "optimizer": cfg.optimizer, "lr": cfg.lr, "max_iter": cfg.lbfgs_max_iter, "history_size": cfg.lbfgs_history,
            "line_search": None if cfg.lbfgs_line_search == "none" else cfg.lbfgs_line_search,
            "blowup_factor": cfg.blowup_factor, "plateau_tol": cfg.plateau_tol, "plateau_window": cfg.plateau_window}


def _check_outputs(paths: dict[str, Path], cfg: Config, inputs: list[Path]) -> None:
    """No output may overwrite an input (the image, or a log beside it) or land on a folder."""
    inputs = inputs + [Path(p) for p in (cfg.init, cfg.weights) if Path(p).is_file()]
    for kind, path in paths.items():
        if path.is_dir():
            raise StylizeError(f"cannot write {path}: a folder of that name exists. Remove it or choose another -o.")
        for given in inputs:
            if path.exists() and given.exists() and path.samefile(given):
                raise StylizeError(f"the {kind} output {path} is the input {given}; refusing to overwrite it. Choose another -o.")


def run(cfg: Config, on_step: Callable[[StepRecord], None] | None = None, write: bool = True,
        resume: str | Path | None = None) -> RunResult:
    """Stylize ``cfg.content`` with ``cfg.style``; write the image and logs unless ``write`` is False.

    ``resume``: a checkpoint (``<stem>.ckpt``) of this same run to continue; ``cfg`` must equal its config
    (:func:`checkpoint.check`), which :func:`stylize` and the CLI arrange by building ``cfg`` on top of it.

    Raises:
        StylizeError: for anything the user can fix; nothing is written in that case.
    """
    t0 = time.perf_counter()
    device = devices.resolve(cfg.device)
    profile = _dlp_configure(cfg) if device.type == "dlp" else None
    listed = [stage_of(e)[0] for e in cfg.scales] if isinstance(cfg.scales, list) else []
    size = cfg.size or (listed[-1] if listed else 512 if device.type == "cuda" else 128)
    demo_content, demo_style = demo_pair()
    content_path = Path(cfg.content) if cfg.content else demo_content
    style_paths = [Path(p) for p in cfg.style] if cfg.style else [demo_style]
    output = images.check_output_path(cfg.output or default_output(content_path, style_paths))
    # From here on the config says what was actually used (run.json records it).
    cfg = dataclasses.replace(cfg, size=size, device="dlp-sim" if device.type == "dlp" else str(device),
                              content=str(content_path), style=[str(p) for p in style_paths], output=str(output))
    paths = {"image": output, **logs.log_paths(output)}
    if cfg.profile:
        paths["profile"] = Path(f"{output.with_suffix('')}.dlp-profile.json")
    ckpt_path = checkpoint.path_for(output)
    _check_outputs({**paths, **({"checkpoint": ckpt_path} if cfg.checkpoint_every else {})}, cfg,
                   [content_path, *style_paths])

    content_pil, style_pils = images.load_image(content_path), [images.load_image(p) for p in style_paths]
    # Which weights `auto` means decides the recipe (and so the layers, the cut and the size check).
    spec, fallback = weights_.resolve(cfg.weights)
    cfg = resolve_recipe(cfg, untrained_fallback=fallback is not None)
    if cfg.style_palette and not (cfg.original_colors or cfg.match_histogram):  # the photo in the painting's colours
        content_pil = images.to_pil(colors.style_palette(images.to_tensor(content_pil),
                                                         [images.to_tensor(p) for p in style_pils]))
    inputs = checkpoint.digest([content_path, *style_paths, cfg.init, cfg.weights]) if cfg.checkpoint_every or resume else {}
    saved = checkpoint.load(resume) if resume else None
    if saved is not None:
        checkpoint.check(saved, cfg, inputs, spec, resume)
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    width, height = images.shorter_edge_size(content_pil.width, content_pil.height, size)
    _check_size(width, height, cfg, cut, device)
    fast = not cfg.exact and device.type != "dlp"  # the CPU/CUDA fast path; dlp-sim fuses for itself
    stages = schedule.plan(cfg, content_pil.width, content_pil.height, cut, fast)  # sizes as resize_shorter makes them
    for stage in stages:
        schedule.check_style_size(cfg, stage, cut)
    if hasattr(on_step, "plan"):  # a progress display that wants the whole schedule (the CLI's)
        on_step.plan(stages)
    first, history, resumed = (0, [], None) if saved is None else checkpoint.loop_state(saved, device)
    watch = _Watch(cfg, paths["image"], ckpt_path, {"inputs": inputs, "weights": spec}, write, on_step)
    try:
        net, weights = load_features(spec, cut, cfg.pooling)
        net = net.to(device).eval()
        if fallback is not None:
            weights = dataclasses.replace(weights, warning=weights_.fallback_warning(fallback, cfg.recipe))
        if weights.warning:
            log.warning(weights.warning)
        log.info("weights: %s; recipe: %s; device: %s; image: %dx%d px; %s", weights, cfg.recipe,
                 devices.describe(device), width, height,
                 " then ".join(f"{s.steps} steps at {s.width}x{s.height}" for s in stages))
        if resumed is not None:
            log.info("resuming %s at step %d", resume, len(history) + len(resumed.history))
        content_full = images.to_tensor(images.resize_shorter(content_pil, size)).to(device)
        init = _init_image(cfg, content_full)
        if profile is not None and weights.qparams:  # calibrated int8 for the targets too (see below)
            _dlp_calibrate(net, weights.qparams, quiet=True)
        t1 = time.perf_counter()
        image = previous = result = None
        events: list[str] = []
        with _deterministic(device):
            try:
                for k, stage in enumerate(stages):
                    if k < first:
                        continue
                    content_img, style_imgs = schedule.stage_images(cfg, content_pil, style_pils, stage, device)
                    # The fast path computes the targets through its own kernels (fuse), not through the plain graph.
                    plain, content_losses, style_losses = features.build_style_model(
                        net, content_img, style_imgs, cfg.content_layers, cfg.style_layers, cfg.style_blend,
                        targets=not fast, laplacian_weight=cfg.laplacian_weight, laplacian_pool=cfg.laplacian_pool)
                    model = fused.fuse(plain, content_img, style_imgs) if fast else plain
                    if cfg.normalize == "targets":  # once, here: the loop runs the plain weighted losses
                        losses.normalize_by_targets([*content_losses, *style_losses])
                    watch.start_stage(k, history, plain, content_img)
                    if profile is not None:
                        profile = _dlp_start(model, profile, restart=k == first)
                        if k == first and weights.qparams:  # an int8 artefact: dlp-sim's int8 mode uses its scales
                            _dlp_calibrate(net, weights.qparams)
                    stage_init = schedule.resize(init if k == len(stages) - 1 else init.clamp(0, 1), stage)
                    if previous is None:
                        image = stage_init.clone()
                    else:  # the change the coarser stage made, upsampled: a content or image init keeps its detail
                        change = F.interpolate(previous[0] - previous[1], size=(stage.height, stage.width),
                                               mode="bilinear", align_corners=False)
                        image = (stage_init.clamp(0, 1) + change).clamp_(0, 1)
                    watch.image = image
                    result = optimize(model, content_losses, style_losses, image, steps=stage.steps, project=fast,
                                      first_step=len(history) + 1, size=stage.size,
                                      elapsed=history[-1].seconds if history else 0.0,
                                      resume=resumed if k == first else None, on_step=watch.step,
                                      on_boundary=watch.boundary, **_settings(cfg))
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
    except torch.cuda.OutOfMemoryError:  # the size check is an estimate; on the CPU the OS would step in first
        raise StylizeError(f"out of memory on {device} at size {size}. Use a smaller --size.") from None
    finally:
        watch.close()
    t2 = time.perf_counter()
    if result.interrupted:
        watch.save_last_checkpoint()
    if result.diverged and not events:
        log.warning("the loss became inf/NaN at step %d; stopped and kept the last image with a finite loss. "
                    "Lower --style-weight / --content-weight.", len(history) + 1)
    final = result.image
    if result.image.shape[-2:] != (height, width):  # stopped in a coarser stage: the image at the output size
        final = F.interpolate(final, size=(height, width), mode="bilinear", align_corners=False).clamp_(0, 1)
    if cfg.original_colors:
        final = colors.original_colors(final, content_full)
    out = RunResult(image=final.cpu(), history=history, config=cfg, weights=weights,
                    device=devices.describe(device), status=result.status, profile=profile,
                    output_losses=result.output, events=events, stop_reason=result.stop_reason)
    if profile is not None:
        profile.steps, profile.host_s = len(history), t2 - t1
    per_step = [b.seconds - a.seconds for a, b in zip(history, history[1:]) if a.size == b.size == size]
    out.timings = {"setup_s": t1 - t0, "optimize_s": t2 - t1,
                   "median_step_s": statistics.median(per_step) if per_step else None}
    if write:
        with _interrupts_ignored():
            _write(out, paths, content_path, style_paths)
        out.paths = paths
    out.timings["total_s"] = time.perf_counter() - t0
    return out


@contextlib.contextmanager
def _deterministic(device: torch.device):
    """Deterministic algorithms on the CPU (bitwise repeatable runs, tested); elsewhere as configured."""
    if device.type != "cpu":
        yield
        return
    import torch.utils.deterministic as det

    previous, fill = torch.are_deterministic_algorithms_enabled(), det.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    det.fill_uninitialized_memory = False  # NaN-filling every new tensor made steps 1.7x slower; we read none unwritten
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        det.fill_uninitialized_memory = fill


class _Watch:
    """What happens at each step besides optimizing: the caller's callback, intermediate images
    (``save_every``), TensorBoard, and checkpoints (``checkpoint_every``; the last one again on Ctrl-C)."""

    def __init__(self, cfg: Config, output: Path, ckpt: Path, identity: dict[str, Any], write: bool,
                 on_step: Callable[[StepRecord], None] | None):
        self.cfg, self.output, self.ckpt, self.write, self.on_step = cfg, output, ckpt, write, on_step
        self.identity = identity  # what a checkpoint records of the run besides its config: inputs, weights
        self.board = board.Board(cfg.tensorboard) if cfg.tensorboard and write else None
        self.image: torch.Tensor | None = None  # the image being optimized (changed in place by the loop)
        self.stage, self.earlier, self.latest, self.saved_step = 0, [], None, 0
        self.content: torch.Tensor | None = None

    def start_stage(self, k: int, earlier: list[StepRecord], model, content: torch.Tensor) -> None:
        self.stage, self.earlier, self.content = k, list(earlier), content
        if self.board is not None and k == 0:
            self.board.graph(model, content)

    def step(self, record: StepRecord) -> None:
        if self.on_step is not None:
            self.on_step(record)
        if self.board is not None:
            self.board.step(record)
        every = self.cfg.save_every or self.cfg.log_every
        if self.board is not None and record.step % every == 0:
            self.board.image(record.step, self._shown())
        if self.write and self.cfg.save_every and record.step % self.cfg.save_every == 0:
            path = Path(f"{self.output.with_suffix('')}.step{record.step:04d}{self.output.suffix}")
            with AtomicFiles() as files:
                images.save_image(self._shown(), files.stage(path), path)

    def _shown(self) -> torch.Tensor:
        image = self.image.detach().clamp(0, 1)
        return colors.original_colors(image, self.content) if self.cfg.original_colors else image

    def boundary(self, state: LoopState) -> None:
        if not (self.write and self.cfg.checkpoint_every):
            return
        self.latest = (self.stage, self.earlier, state)
        step = len(self.earlier) + len(state.history)
        if step - self.saved_step >= self.cfg.checkpoint_every:
            self._save()

    def _save(self) -> None:
        stage, earlier, state = self.latest
        checkpoint.save(self.ckpt, checkpoint.portable(self.cfg), self.identity["inputs"], self.identity["weights"],
                        stage, earlier, state)
        self.saved_step = len(earlier) + len(state.history)

    def save_last_checkpoint(self) -> None:
        """On Ctrl-C: the state after the last complete optimizer step, if newer than the last checkpoint."""
        if self.latest is not None and len(self.latest[1]) + len(self.latest[2].history) > self.saved_step:
            with _interrupts_ignored():
                self._save()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


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


def _write(out: RunResult, paths: dict[str, Path], content: Path, styles: list[Path]) -> None:
    final = out.output_losses or (out.history[-1] if out.history else None)
    summary: dict[str, Any] = {
        "status": out.status,
        "steps_run": len(out.history),
        "final_losses": dataclasses.asdict(final) if final else None,  # of the output image (the best, if guarded)
        "guard_events": out.events,
        "stop_reason": out.stop_reason,
        "content": str(content), "style": [str(s) for s in styles],
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
        logs.plot_losses(out.history, files.stage(paths["plot"]), title=f"{content.name} x {' + '.join(s.name for s in styles)}")
        if "profile" in paths:
            logs.write_json(out.profile.as_dict(), files.stage(paths["profile"]))


def _dlp_configure(cfg: Config):
    from . import dlp

    return dlp.configure(cfg.dlp_spec, cfg.dlp_mode)


def _dlp_start(model: torch.nn.Module, profile, restart: bool):
    """Fuse conv+ReLU pairs for the device; at the first stage, start the profile afresh: it covers the
    optimization only."""
    from . import dlp

    dlp.fuse_conv_relu(model)
    if not restart:
        return profile
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
    return run(cfg, on_step=on_step, write=write, resume=resume)
