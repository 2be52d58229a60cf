"""``stylize video``: a clip stylized frame by frame, temporally coherent (Ruder et al. 2016), resumable.

Frame 1 runs the normal schedule (coarse to fine, ``first_steps`` evaluations). Each later frame starts from the
previous output warped to it by optical flow (:mod:`stylize.flow`) and adds the temporal term of the
:class:`~stylize.objective.Objective` (``temporal_weight``): held to that warp where the flow is consistent,
for ``steps`` evaluations at the final size.

Each finished frame is written at once (atomically) into a work folder next to OUT (``<stem>.frames/``, or OUT
itself when OUT is a folder) with a ``video.json`` of the settings. A rerun with the same settings continues at
the first missing frame; the previous output is read back from its PNG, and an uninterrupted run reads its own
output back the same way (8-bit), so both give the same frames. Ctrl-C keeps the finished frames (``--encode-
partial`` also encodes them); a video OUT is encoded when every frame is done, the source's audio copied.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from . import colors, devices, features, flow, frames, images, memory, schedule, weights as weights_
from .callbacks import Callbacks, RunHooks
from .config import Config, resolve_recipe
from .demo import demo_pair
from .errors import StylizeError
from .optimize import optimize
from .outputs import AtomicFiles, check_name_lengths, interrupts_ignored
from .stages import init_image, loop_settings, run_stages

log = logging.getLogger("stylize")

MANIFEST = "video.json"


@dataclass
class VideoConfig:
    """What ``stylize video`` adds to a run's :class:`Config` (the single source of its defaults)."""

    input: str
    output: str
    frames: str | None = None  # A:B, 1-based and inclusive (A: to the end); none: every frame
    fps: float | None = None  # resample to this rate (same duration); none: the clip's rate
    steps: int = 100  # evaluations of each later frame (started from the warped previous output)
    first_steps: int | None = None  # evaluations of frame 1 (the normal schedule); none: the config's steps
    independent: bool = False  # baseline: every frame as frame 1 (noise init, no temporal term), for --report
    encode_partial: bool = False  # on Ctrl-C, also encode the frames finished so far
    report: bool = False  # write <work>/report.json: per-frame seconds, steps and temporal warp error


@dataclass
class FrameStats:
    index: int  # output frame, 0-based
    source: int  # source frame, 0-based
    seconds: float  # optimization + flow
    flow_seconds: float = 0.0
    steps: int = 0
    warp_error: float | None = None  # mean |out_t - warp(out_{t-1})| on consistent pixels (frames after the first)
    consistent: float | None = None  # fraction of pixels the mask keeps
    resumed: bool = False  # read back from the work folder, not computed in this call


@dataclass
class VideoResult:
    output: Path
    work: Path
    fps: Fraction
    frames: list[FrameStats] = field(default_factory=list)
    total: int = 0  # frames the output should have
    status: str = "completed"  # completed | interrupted | failed (a frame could not be read)
    encoded: bool = False
    device: str = ""
    weights: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "work": str(self.work), "fps": str(self.fps), "status": self.status,
                "encoded": self.encoded, "device": self.device, "weights": self.weights, "summary": self.summary(),
                "frames": [dataclasses.asdict(f) for f in self.frames]}

    def summary(self) -> dict[str, Any]:
        """Medians of the frames computed in this call: seconds of frame 1 and of later frames, warp error."""
        done = [f for f in self.frames if not f.resumed]
        first = [f.seconds for f in done if f.index == 0]
        later = [f.seconds for f in done if f.index > 0]
        errors = [f.warp_error for f in self.frames if f.warp_error is not None]
        return {"frames": len(self.frames), "of": self.total, "first_frame_s": first[0] if first else None,
                "later_frame_s_median": statistics.median(later) if later else None,
                "warp_error_mean": statistics.fmean(errors) if errors else None,
                "flow_s_median": statistics.median([f.flow_seconds for f in done if f.index > 0] or [0.0])}


def work_folder(output: Path) -> Path:
    """Where the frames go as they finish: OUT itself for a folder OUT, else ``<stem>.frames`` beside OUT."""
    return output if output.suffix.lower() not in frames.VIDEO_FORMATS else output.with_suffix(".frames")


def frame_path(work: Path, k: int) -> Path:
    return work / f"frame{k + 1:06d}.png"


def _check_output(output: Path, clip: frames.Clip) -> Path:
    suffix = output.suffix.lower()
    if suffix and suffix not in frames.VIDEO_FORMATS:
        raise StylizeError(f"output {output}: unsupported extension '{output.suffix}'. Use a video "
                           f"({', '.join(frames.VIDEO_FORMATS)}) or a folder name without an extension.")
    if suffix and output.is_dir():
        raise StylizeError(f"cannot write {output}: a folder of that name exists. Remove it or choose another -o.")
    if not suffix and output.exists() and not output.is_dir():
        raise StylizeError(f"cannot write frames to {output}: a file of that name exists. Choose another -o.")
    if output.exists() and clip.path.exists() and output.resolve() == clip.path.resolve():
        raise StylizeError(f"the output {output} is the input; refusing to overwrite it. Choose another -o.")
    work = work_folder(output)
    check_name_lengths([output, frame_path(work, 0)])
    images.check_writable(output, work)
    return work


def _manifest(work: Path, settings: dict[str, Any]) -> int:
    """Check (or start) the work folder's record of the settings; the number of frames already done."""
    path = work / MANIFEST
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if saved != settings:
            differ = _differ(saved, settings) if isinstance(saved, dict) else []
            raise StylizeError(f"{work} holds frames made with other settings ({', '.join(differ[:4]) or 'unreadable'} "
                               "differ); remove it to start afresh, or choose another -o.")
    elif work.is_dir() and any(work.glob("frame*.png")):
        raise StylizeError(f"{work} already holds frames that stylize video did not record; choose another -o.")
    else:
        with AtomicFiles() as files:
            files.stage(path).write_text(json.dumps(settings, indent=1, sort_keys=True), encoding="utf-8")
    done = 0
    while frame_path(work, done).is_file():
        done += 1
    return done


def _differ(saved: dict, settings: dict, prefix: str = "") -> list[str]:
    """The keys (``video.steps``, ``config.style_weight``) whose values differ."""
    out = []
    for key in sorted(set(saved) | set(settings)):
        a, b = saved.get(key), settings.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differ(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def stylize_video(vcfg: VideoConfig, cfg: Config, callbacks: Callbacks | None = None,
                  on_frame: Callable[[FrameStats, int], None] | None = None) -> VideoResult:
    """Stylize the clip ``vcfg.input`` with ``cfg``'s style and settings into ``vcfg.output``.

    ``on_frame(stats, total)`` hears each finished frame. Raises :class:`StylizeError` for anything the user can
    fix, before any frame is computed where it can be known then (a corrupt frame later: its number; the
    finished frames stay in the work folder).
    """
    flow._cv2()  # the extra: one line now, not after frame 1
    frames.require_av()
    callbacks = callbacks or Callbacks()
    clip = frames.open_clip(vcfg.input)
    wanted, fps = frames.select(clip, vcfg.frames, vcfg.fps)
    output = Path(vcfg.output)
    work = _check_output(output, clip)
    backend = devices.resolve(cfg.device, cfg)
    size = cfg.size or (512 if backend.device.type == "cuda" else 128)
    style_paths = [Path(p) for p in cfg.style] if cfg.style else [demo_pair()[1]]
    style_pils = [images.load_image(p) for p in style_paths]
    spec, fallback = weights_.resolve(cfg.weights)
    cfg = resolve_recipe(dataclasses.replace(cfg, size=size, device=backend.name, style=[str(p) for p in style_paths],
                                             content=None, output=str(output)), untrained_fallback=fallback is not None)
    first_cfg = dataclasses.replace(cfg, steps=vcfg.first_steps or cfg.steps)
    later_cfg = dataclasses.replace(cfg, steps=vcfg.steps, scales="none")
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    settings = {"input": str(clip.path.resolve()), "frames": wanted, "fps": str(fps), "video": dataclasses.asdict(vcfg),
                "config": dataclasses.asdict(cfg)}
    for key in ("output", "encode_partial", "report"):
        settings["video"].pop(key)
    settings["config"].pop("output")
    settings = json.loads(json.dumps(settings))  # as video.json holds it
    net, winfo = weights_.load_features(spec, cut, cfg.pooling)
    net = backend.prepare(net, winfo.qparams)
    done = _manifest(work, settings)
    result = VideoResult(output, work, fps, total=len(wanted), device=backend.describe())
    result.weights = str(winfo)
    if fallback is not None:
        log.warning(weights_.fallback_warning(fallback, cfg.recipe))
    log.info("video: %d frames at %s fps from %s; weights: %s; device: %s; %d steps for frame 1, %d for each later "
             "frame%s", len(wanted), fps, clip.path, winfo, backend.describe(), first_cfg.steps, vcfg.steps,
             f"; continuing at frame {done + 1}" if done else "")
    fast = not cfg.exact
    previous_in = previous_out = None
    try:
        for k, (source, frame) in enumerate(frames.read(clip, wanted)):
            content_pil = frame
            if cfg.style_palette and not (cfg.original_colors or cfg.match_histogram):
                content_pil = images.to_pil(colors.style_palette(images.to_tensor(frame), [images.to_tensor(p) for p in style_pils]))
            current_in = images.to_tensor(images.resize_shorter(content_pil, size)).to(backend.device)
            if previous_in is not None and current_in.shape != previous_in.shape:
                raise StylizeError(f"frame {source + 1} of {clip.path} is {frame.width}x{frame.height} px, unlike the "
                                   "frame before it; every frame of a clip must have the same size.")
            t0 = time.perf_counter()
            held = None  # (backward flow, consistency mask) from the previous input frame to this one
            if previous_in is not None:
                backward = flow.flow(current_in, previous_in)
                mask = flow.consistency(flow.flow(previous_in, current_in), backward).to(backend.device)
                held = (backward, mask)
            flow_s = time.perf_counter() - t0
            if k < done:  # finished in an earlier call: read back, as the uninterrupted run reads its own
                out = images.to_tensor(images.load_image(frame_path(work, k))).to(backend.device)
                stats = FrameStats(k, source, 0.0, resumed=True)
            else:
                if held is None or vcfg.independent:
                    out, steps, interrupted = _first_frame(backend, net, first_cfg, content_pil, style_pils, cut,
                                                           current_in, fast, callbacks)
                else:
                    warped = flow.warp(previous_out, held[0]).clamp(0, 1)
                    out, steps, interrupted = _later_frame(backend, net, later_cfg, content_pil, style_pils, warped,
                                                           held[1], fast, callbacks)
                if interrupted:
                    raise KeyboardInterrupt
                if cfg.original_colors:
                    out = colors.original_colors(out, current_in)
                with interrupts_ignored(), AtomicFiles() as files:
                    images.save_image(out.cpu(), files.stage(frame_path(work, k)), frame_path(work, k))
                out = images.to_tensor(images.to_pil(out)).to(backend.device)  # what a resumed run reads back
                stats = FrameStats(k, source, time.perf_counter() - t0, flow_s, steps)
            if held is not None:  # the warp error (--report): the same measure for both modes
                stats.warp_error = flow.warp_error(out, previous_out, *held)
                stats.consistent = float(held[1].mean())
            result.frames.append(stats)
            if on_frame is not None:
                on_frame(stats, len(wanted))
            previous_in, previous_out = current_in, out
    except KeyboardInterrupt:
        result.status = "interrupted"
    except StylizeError as e:  # a corrupt frame: the finished ones stay (and are encoded with --encode-partial)
        result.status, failure = "failed", e
    if output.suffix.lower() in frames.VIDEO_FORMATS and (result.status == "completed" or vcfg.encode_partial):
        finished = [frame_path(work, f.index) for f in result.frames]
        if finished:
            with interrupts_ignored():
                span = (wanted[0] / float(clip.fps), (wanted[0] + len(finished) * float(clip.fps / fps)) / float(clip.fps))
                with AtomicFiles() as files:
                    frames.encode(finished, output, files.stage(output), fps, clip, span)
            result.encoded = True
    if vcfg.report:
        with interrupts_ignored(), AtomicFiles() as files:
            files.stage(work / "report.json").write_text(json.dumps(result.as_dict(), indent=1), encoding="utf-8")
    if result.status == "failed":
        kept = f"; frames 1 to {len(result.frames)} are kept in {work}" if result.frames else ""
        raise StylizeError(f"{str(failure).rstrip('.')}{kept}{' and encoded to ' + str(output) if result.encoded else ''}.")
    return result


def _first_frame(backend, net, cfg: Config, content_pil, style_pils, cut: int, content: torch.Tensor, fast: bool,
                 callbacks: Callbacks):
    """Frame 1 (and every frame of the independent baseline): the normal schedule, from the config's init."""
    stages = schedule.plan(cfg, content_pil.width, content_pil.height, cut, fast)
    memory.check_size(stages[-1].width, stages[-1].height, cfg, cut, backend.device)
    hooks = RunHooks(cfg, Path(cfg.output), Path(cfg.output), {}, False, callbacks)
    callbacks.plan(stages)
    with backend.deterministic():
        done = run_stages(backend, net, cfg, content_pil, style_pils, stages, init_image(cfg, content), hooks,
                          project=fast)
    image = done.result.image
    if image.shape[-2:] != content.shape[-2:]:  # Ctrl-C in the coarse stage: the frame is not kept anyway
        image = torch.nn.functional.interpolate(image, size=content.shape[-2:], mode="bilinear", align_corners=False)
    return image.detach().clamp(0, 1), len(done.history), done.result.interrupted


def _later_frame(backend, net, cfg: Config, content_pil, style_pils, warped: torch.Tensor, mask: torch.Tensor,
                 fast: bool, callbacks: Callbacks):
    """A later frame: from the previous output warped to it, held to that warp where the flow is consistent."""
    (stage,) = schedule.plan(cfg, content_pil.width, content_pil.height, 0, fast)
    content_img, style_imgs = schedule.stage_images(cfg, content_pil, style_pils, stage, backend.device)
    objective = backend.objective(net, content_img, style_imgs, cfg)
    objective.temporal_target = (warped, mask)
    callbacks.plan([stage])
    with backend.deterministic():
        result = optimize(objective, warped.clone(), steps=stage.steps, project=fast, size=stage.size,
                          on_step=callbacks.step, **loop_settings(cfg))
    return result.image.detach().clamp(0, 1), len(result.history), result.interrupted
