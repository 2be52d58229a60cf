"""``stylize bench``: our evaluation against the seed's, interleaved in one process, on the same weights and images.

For each device and size it reports setup time, time per closure evaluation (forward + losses + backward;
median/min/max over ``repeat`` runs after a warm-up), achieved GFLOP/s from an analytic FLOP count, that as
a percentage of the machine's conv peak (measured by a short microbenchmark in the same run), and the peak
peak memory of each (on CPU measured in a fresh process). ``quality`` adds time-to-quality: the best loss the seed's LBFGS loop reaches in
300 evaluations, and how long ours takes to reach it.

Timings alternate ours/seed/ours/seed... so that a noisy machine slows both alike; ratios are of medians.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import baseline, devices, features, images
from .callbacks import StepFunction
from .config import Config, build_config
from .demo import demo_pair
from .devices import Backend
from .errors import StylizeError, did_you_mean
from .optimize import evaluate
from .summary import conv_flops, gram_flops
from .transfer import run
from .weights import load_features

DEVICES = ("cpu", "cuda", "dlp-sim")
QUALITY_EVALS = 300


@dataclass
class BenchConfig:
    """``stylize bench``'s settings and their defaults (the CLI reads its defaults from here)."""

    devices: list[str] = field(default_factory=lambda: ["cpu"])  # cpu | cuda | cuda:N | dlp-sim | all
    sizes: list[int] = field(default_factory=lambda: [256, 512])  # shorter edges in px
    config: str = "default"  # YAML config or bundled name: its layers, weights and loss weights
    sets: list[str] = field(default_factory=list)  # --set key=value items of that config
    repeat: int = 5  # timed evaluations per implementation, after one warm-up
    quality: bool = False  # also time-to-quality (the seed's 300 evaluations, then ours to its best loss)
    high_res: bool = False  # large sizes: ours only, planned (whole or tiled, `max_memory`) vs whole image (high_res)


@dataclass
class Timing:
    setup_s: float
    eval_s: list[float]  # one per repeat
    peak_bytes: int | None  # peak memory of setup + 3 evaluations (CPU: a fresh process's peak RSS)

    @property
    def median_s(self) -> float:
        return statistics.median(self.eval_s)


@dataclass
class SizeResult:
    device: str
    size: int
    width: int
    height: int
    gflop: float  # per evaluation (analytic)
    sim_ms: float | None = None  # dlp-sim: simulated device time of one of our evaluations
    ours: Timing | None = None
    seed: Timing | None = None
    quality: dict[str, Any] | None = None
    error: str | None = None  # "not available: ..." for a device that is not there

    @property
    def speedup(self) -> float | None:
        return self.seed.median_s / self.ours.median_s if self.ours and self.seed else None


@dataclass
class BenchResult:
    machine: dict[str, Any]
    config: str
    weights: str
    rows: list[SizeResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            row = dataclasses.asdict(r)
            for impl in ("ours", "seed"):
                if getattr(r, impl):
                    row[impl]["median_s"] = getattr(r, impl).median_s
                    row[impl]["gflops"] = r.gflop / getattr(r, impl).median_s
            row["speedup"] = r.speedup
            rows.append(row)
        return {"machine": self.machine, "config": self.config, "weights": self.weights, "rows": rows}


# ---- FLOPs and the machine's peak ------------------------------------------------------------------


def flops_per_eval(height: int, width: int, content_layers, style_layers) -> float:
    """Multiply-adds x 2 of one evaluation, counted for the least work the algorithm needs.

    Each conv up to the cut: forward ``2*Cin*Cout*9*H*W`` and the same again for its input gradient (the
    weights are frozen: no weight gradient). Each style tap: ``2*C^2*H*W`` for the Gram matrix and the same
    for its backward. Elementwise work is not counted. Both implementations are measured against this count.
    """
    cut = features.last_tap(content_layers, style_layers)
    taps = {features.layer(n).index for n in style_layers}
    total, in_ch = 0.0, 3
    for entry in features.LAYERS[: cut + 1]:
        pixels = (height // 2**entry.pools_before) * (width // 2**entry.pools_before)
        if entry.kind == "conv":
            total += 2 * conv_flops(in_ch, entry.channels, 1, pixels)
            in_ch = entry.channels
        if entry.index in taps:
            total += 2 * gram_flops(entry.channels, 1, pixels)
    return total


def conv_peak_gflops(device: torch.device, seconds: float = 0.5) -> float:
    """GFLOP/s of one 3x3 conv (64 -> 64 channels, 128x128 px, channels_last): this machine's direct-conv peak."""
    x = torch.randn(1, 64, 128, 128, device=device).contiguous(memory_format=torch.channels_last)
    conv = nn.Conv2d(64, 64, 3, padding=1).to(device).to(memory_format=torch.channels_last)
    flop = 2 * 64 * 64 * 9 * 128 * 128
    with torch.no_grad():
        conv(x)
        _sync(device)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or n < 3:
            conv(x)
            n += 1
        _sync(device)
    return flop * n / (time.perf_counter() - start) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- memory -------------------------------------------------------------------------------------------


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory (Linux VmHWM), or None where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _probe(impl: str, device_name: str, size: int, cfg: Config) -> int | None:
    """In a fresh process: weights, images, setup and three evaluations of one implementation; its peak RSS."""
    backend = devices.resolve(device_name, cfg)
    net, _ = load_features(cfg.weights, features.last_tap(cfg.content_layers, cfg.style_layers))
    content, style = _images(size, backend.device)
    run_eval = _Ours(backend, net.to(backend.device).eval(), content, style, cfg) if impl == "ours" else \
        _Seed(net.to(backend.device).eval(), content, style, cfg)
    for _ in range(3):
        run_eval()
    return peak_rss_bytes()


def peak_memory(impl: str, backend: Backend, size: int, cfg: Config, net: nn.Module) -> int | None:
    """Peak memory of setup + three evaluations of ``impl`` ("ours" or "seed").

    CPU (and dlp-sim, which lives in host memory): the peak RSS of a fresh process that does only that, so
    that neither implementation's caches (NNPACK's workspace, the allocator's free lists) hide in the other's
    numbers; it includes the ~0.7 GB of the Python + torch runtime. CUDA: ``max_memory_allocated`` here.
    """
    device = backend.device
    if device.type != "cuda":
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(_probe, (impl, backend.name, size, cfg))
    content, style = _images(size, device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    run_eval = _Ours(backend, net, content, style, cfg) if impl == "ours" else _Seed(net, content, style, cfg)
    for _ in range(3):
        run_eval()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del run_eval
    return peak


# ---- one device, one size ------------------------------------------------------------------------------


def _images(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    content_path, style_path = demo_pair()
    content = images.load_image(content_path)
    width, height = images.shorter_edge_size(content.width, content.height, size)
    return (images.to_tensor(images.resize_shorter(content, size)).to(device),
            images.to_tensor(images.resize_cover(images.load_image(style_path), width, height)).to(device))


def _noise(like: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.randn(like.shape, generator=torch.Generator().manual_seed(seed)).to(like.device)


class _Ours:
    """Our path as ``run`` builds it: the backend's objective (fused unless ``exact``; on dlp-sim the device's
    kernels) and ``optimize.evaluate``."""

    def __init__(self, backend: Backend, net, content, style, cfg: Config):
        start = time.perf_counter()
        self.objective = backend.objective(net, content, [style], cfg)
        self.setup_s = time.perf_counter() - start
        self.image = _noise(content, cfg.seed).requires_grad_(True)

    def __call__(self) -> float:
        terms = evaluate(self.objective, self.image)
        self.objective.backward(terms)
        return terms.total.item()


class _Seed:
    """The seed's code (``stylize.baseline``) on the same network, images and noise."""

    def __init__(self, net, content, style, cfg: Config):
        device = content.device
        mean, std = (torch.tensor(v).to(device) for v in (features.IMAGENET_MEAN, features.IMAGENET_STD))
        start = time.perf_counter()
        # The seed's loss modules carry no per-layer weights: bench uses configs whose layers weigh 1.0 each,
        # or folds a common weight into style_weight (checked in bench()).
        self.model, self.sl, self.cl = baseline.get_style_model_and_losses(
            net, mean, std, style, content, *_seed_names(cfg))
        self.setup_s = time.perf_counter() - start
        self.image = _noise(content, cfg.seed).requires_grad_(True)
        self.model.requires_grad_(False)
        self.optimizer = torch.optim.LBFGS([self.image])
        self.weights = _seed_weights(cfg)

    def __call__(self) -> float:
        s, c = baseline.evaluate(self.model, self.sl, self.cl, self.image, self.optimizer, *self.weights)
        return (s + c).item()


def _seed_names(cfg: Config) -> tuple[list[str], list[str]]:
    """Content and style layers in the seed's naming (conv_N), the only one its code knows."""
    return ([features.layer(n).name for n in cfg.content_layers], [features.layer(n).name for n in cfg.style_layers])


def _seed_weights(cfg: Config) -> tuple[float, float]:
    """(style_weight, content_weight) for the seed's code, with a common per-layer weight folded in; refuses a
    config the seed's code cannot run (its weights, pooling and losses are fixed)."""
    if cfg.normalize != "none" or cfg.pooling != "max":
        raise StylizeError("bench: the seed's code has max pooling and no loss normalization; use a config without "
                           "normalize/pooling changes (like default or gatys).")
    style = set(cfg.style_layers.values()) or {1.0}
    content = set(cfg.content_layers.values()) or {1.0}
    if len(style) > 1 or len(content) > 1:
        raise StylizeError("bench: the seed's code has one weight for all style layers and one for all content "
                           "layers; use a config whose layers share their weight (like default or gatys).")
    return cfg.style_weight * style.pop(), cfg.content_weight * content.pop()


def bench_size(backend: Backend, size: int, cfg: Config, net: nn.Module, repeat: int,
               quality: bool = False) -> SizeResult:
    device = backend.device
    content, style = _images(size, device)
    _, _, height, width = content.shape
    result = SizeResult(backend.name, size, width, height,
                        flops_per_eval(height, width, cfg.content_layers, cfg.style_layers) / 1e9)
    ours, seed = _Ours(backend, net, content, style, cfg), _Seed(net, content, style, cfg)
    first_ours, first_seed = ours(), seed()  # warm-up (and the two losses must agree)
    if abs(first_ours - first_seed) > 1e-3 * abs(first_seed):
        raise StylizeError(f"bench: our loss {first_ours:.6g} differs from the seed's {first_seed:.6g}; this is a bug.")
    times: dict[str, list[float]] = {"ours": [], "seed": []}
    for _ in range(repeat):
        for name, impl in (("ours", ours), ("seed", seed)):
            _sync(device)
            sim_before, start = backend.simulated_seconds(), time.perf_counter()
            impl()
            _sync(device)
            times[name].append(time.perf_counter() - start)
            if name == "ours" and sim_before is not None:  # a simulator: its device time of our evaluation
                result.sim_ms = (backend.simulated_seconds() - sim_before) * 1e3
    setups = ours.setup_s, seed.setup_s
    del ours, seed
    peaks = {name: peak_memory(name, backend, size, cfg, net) for name in ("ours", "seed")}
    result.ours = Timing(setups[0], times["ours"], peaks["ours"])
    result.seed = Timing(setups[1], times["seed"], peaks["seed"])
    if quality:
        result.quality = time_to_quality(backend.name, size, cfg, net, content, style)
    return result


class _Reached(Exception):
    pass


def time_to_quality(device: str, size: int, cfg: Config, net: nn.Module,
                    content: torch.Tensor, style: torch.Tensor, evals: int = QUALITY_EVALS) -> dict[str, Any]:
    """The seed's full loop for ``evals`` evaluations (its best loss is the target), then ours until it gets there.

    Both times include setup (targets). Ours runs ``stylize run``'s own pipeline with ``cfg``.
    """
    start = time.perf_counter()
    seed_image = _noise(content, cfg.seed)
    style_weight, content_weight = _seed_weights(cfg)
    _, trace = baseline.run_style_transfer(net, content, style, seed_image, evals, *_seed_names(cfg),
                                           style_weight, content_weight)
    trace = trace[:evals]
    totals = [s + c for s, c, _ in trace]
    target = min(totals)
    seed_s = trace[-1][2] - start  # setup + 300 evaluations

    # Ours: `stylize run`'s whole pipeline on the same images and weights, timed from the call (so it also
    # pays for loading the images and weights, and for its coarse stage) to the first full-size evaluation
    # at or below the target.
    reached: dict[str, float] = {}
    start = time.perf_counter()

    def watch(record) -> None:
        if record.size == size and record.total <= target:
            reached.update(seconds=time.perf_counter() - start, step=record.step)
            raise _Reached

    content_path, style_path = demo_pair()
    ours_cfg = dataclasses.replace(cfg, content=str(content_path), style=[str(style_path)], size=size,
                                   device=device, steps=10 * evals)
    start = time.perf_counter()
    with contextlib.suppress(_Reached):
        run(ours_cfg, callbacks=StepFunction(watch), write=False)
    return {"evals": evals, "target_loss": target, "seed_final_loss": totals[-1],
            "seed_best_at_eval": totals.index(target) + 1, "seed_s": seed_s,
            "ours_s": reached.get("seconds"), "ours_evals": reached.get("step"),
            "speedup": seed_s / reached["seconds"] if reached else None}


def bench(settings: BenchConfig, on_row=None) -> BenchResult:
    """Run the benchmark; ``on_row`` is called with each finished :class:`SizeResult`.

    Raises:
        StylizeError: an unknown device name, a size too small, a config the seed's code cannot run.
    """
    cfg = build_config(settings.config, settings.sets)
    names = [name.lower() for name in settings.devices]
    for name in names:
        if name not in (*DEVICES, "all") and not name.startswith("cuda:"):
            raise StylizeError(f"unknown device {name!r}.{did_you_mean(name, DEVICES)} "
                               f"Use one of {', '.join(DEVICES)}, cuda:N or all.")
    for s in settings.sizes:
        if s < 32:
            raise StylizeError(f"--size {s} is too small to benchmark; use 32 or more.")
    _seed_weights(cfg)  # refuse per-layer weights before any work
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    net, info = load_features(cfg.weights, cut)
    names = list(DEVICES) if "all" in names else names
    result = BenchResult(machine={}, config=settings.config, weights=str(info))
    for name in names:
        try:
            backend = devices.resolve(name, cfg)
        except StylizeError as e:
            for size in settings.sizes:
                row = SizeResult(name, size, 0, 0, 0.0, error=f"not available: {e}")
                result.rows.append(row)
                if on_row:
                    on_row(row)
            continue
        result.machine[name] = {"description": backend.describe(),
                                "conv_peak_gflops": conv_peak_gflops(backend.device),
                                "threads": torch.get_num_threads()}
        device_net = backend.prepare(net)
        for size in settings.sizes:
            row = bench_size(backend, size, cfg, device_net, settings.repeat, settings.quality)
            result.rows.append(row)
            if on_row:
                on_row(row)
    return result


# ---- high resolution: the memory plan's evaluation at large sizes -----------------------------------------------


def _high_res_probe(size: int, cfg: Config, mode: str, repeat: int) -> dict[str, Any]:
    """In a fresh process: a real run (:func:`stylize.transfer.run`, one stage at ``size``, the demo pair, nothing
    written) as the plan makes it (``mode="planned"``: under ``cfg.max_memory`` or the available memory) or
    whole-image (``mode="whole"``: the bound lifted), long enough that the LBFGS history the plan gives the
    stage is full before the ``repeat`` evaluations that are timed (``history + 1 + repeat`` evaluations, one
    per LBFGS iteration without a line search); its peak RSS (VmHWM) is then what a run of that size holds."""
    from . import plan
    from .schedule import Stage

    backend = devices.resolve("cpu", cfg)
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    _, _, height, width = _images(size, backend.device)[0].shape
    bound = None if mode == "whole" else plan.budget(cfg, backend.device)[0]
    chosen = plan.plan_stage(Stage(size, width, height, 1), cfg, cut, backend.device, bound)
    if chosen is None:
        return {"size": size, "width": width, "height": height, "mode": mode, "error": "does not fit"}
    content, style = demo_pair()
    lifted = "1e15" if mode == "whole" else cfg.max_memory  # bytes
    out = run(dataclasses.replace(cfg, content=str(content), style=[str(style)], size=size, scales="none",
                                  steps=chosen.history + 1 + repeat, plateau_tol=0.0, max_memory=lifted, device="cpu"),
              write=False)
    stage = out.plan["stages"][0]
    seconds = [r.seconds for r in out.history]
    times = [b - a for a, b in zip(seconds, seconds[1:])][-repeat:]
    mp = width * height / 1e6
    return {"size": size, "width": width, "height": height, "megapixels": mp, "mode": stage["mode"],
            "tile": stage["tile"], "tiles": stage["tiles"], "halo": stage["halo"], "history": stage["history"],
            "evaluations": len(out.history), "predicted_peak_bytes": out.plan["peak_bytes"],
            "peak_rss_bytes": peak_rss_bytes(),
            "setup_s": out.timings["setup_s"] + out.timings["optimize_s"] - seconds[-1],  # all but the evaluations
            "eval_s": times, "median_s": statistics.median(times), "s_per_mp": statistics.median(times) / mp,
            "run_s": out.timings["optimize_s"]}


def bench_high_res(settings: BenchConfig, on_row=None) -> list[dict[str, Any]]:
    """Per size: the planned evaluation (tiled where ``max_memory`` or the machine asks for it) and, where the plan
    tiles and the whole image fits the available memory, the whole-image one; each in a fresh process (CPU)."""
    from . import plan

    cfg = build_config(settings.config, settings.sets)
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    free = devices.available_memory(torch.device("cpu")) or 0
    rows = []
    for size in settings.sizes:
        for mode in ("planned", "whole"):
            if mode == "whole":
                _, _, h, w = _images(size, torch.device("cpu"))[0].shape
                whole = plan.whole_bytes(w, h, cfg, cut, plan.history_for(cfg, w, h), torch.device("cpu"))
                if rows[-1].get("mode") == "whole" or whole > 0.9 * free:
                    break  # the plan was whole-image already, or the whole image does not fit here
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                row = pool.apply(_high_res_probe, (size, cfg, mode, settings.repeat))
            rows.append(row)
            if on_row:
                on_row(row)
    return rows
