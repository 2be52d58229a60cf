"""The memory planner: for each stage of a run, whole-image or tiled evaluation (:mod:`stylize.tiled`), the tile
size and the LBFGS history, so that the run's predicted peak stays within a bound (``max_memory``, else the
memory available minus a margin). ``stylize model`` prints the plan, ``run.json`` and checkpoints record it.

The rule, per stage:

* the LBFGS history is ``lbfgs_history``, shortened at large sizes so that its vectors hold at most
  ``HISTORY_MP`` megapixel-entries (2 image-sized vectors each): 100 up to 0.4 MP, 10 at 4 MP, and never below
  ``MIN_HISTORY`` (jcjohnson/neural-style #351 and Galerne et al. shorten it by hand at these sizes);
* whole-image when its peak fits (:func:`memory.estimate_bytes`, :func:`memory.setup_bytes`); else tiled, with the
  largest tile of ``TILES`` that fits; else a shorter history; else the run is refused before any work, with the
  largest size that fits.

A tiled stage's peak: the torch runtime, the image-sized vectors (image, gradient, LBFGS history, the init), the
content targets (full-size features of the content layers), the style images, and one tile's forward and
backward with its halo (the whole-image estimate at the tile's size, without history).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from . import devices, features, images, memory
from .config import MIN_SIZE, Config, parse_bytes
from .errors import StylizeError
from .schedule import Stage
from .tiled import grid_of, halo, tiles

HISTORY_MP = 40.0  # LBFGS history x megapixels: 2 x 3 float32 per pixel and entry = 24 bytes, so at most ~1 GB
MIN_HISTORY = 5
TILES = (2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32, 16)  # interior sizes tried, largest first
MARGIN = 0.10  # of the available memory, left free when no max_memory is given...
MARGIN_MIN = 512 * 2**20  # ...and at least this much
# The tiled peak's two fitted constants (real runs' peak RSS, seed layers, the LBFGS history full; `stylize bench
# --high-res`): 4096x3072 px, 192 tiles of 256 px, history 5: 5.75 GiB; 2048x1536 px, 24 tiles of 384 px, history 12:
# 3.48 GiB. IMAGE_VECTORS: image-sized float32 vectors besides the history (the image and its gradient, LBFGS's flat
# gradient, previous gradient and direction, the best image, the init, the stage's content, less what is not alive
# at once); TILE_FACTOR: one tile's forward and backward against memory.estimate_bytes at the tile's size (pass 1's
# activations, the fast path's workspaces, the allocator's tile-sized blocks).
IMAGE_VECTORS = 6
TILE_FACTOR = 2.2


@dataclass(frozen=True)
class StagePlan:
    """How one stage evaluates: ``tile`` is None for whole-image."""

    size: int
    width: int
    height: int
    tile: int | None
    tiles: int
    halo: int
    history: int
    peak_bytes: int

    @property
    def mode(self) -> str:
        return "whole" if self.tile is None else "tiled"

    def describe(self) -> str:
        how = "whole image" if self.tile is None else f"tiled: {self.tiles} tiles of {self.tile} px + {self.halo} px halo"
        return (f"{self.width}x{self.height} px: {how}, LBFGS history {self.history}, "
                f"predicted peak {self.peak_bytes / 2**30:.2f} GiB")


@dataclass(frozen=True)
class Plan:
    """The plan of a run: one :class:`StagePlan` per stage, and the bound it was made for."""

    stages: tuple[StagePlan, ...]
    budget_bytes: int
    budget_source: str  # "max_memory" | "available" | "unknown"

    @property
    def peak_bytes(self) -> int:
        return max(s.peak_bytes for s in self.stages)

    def as_dict(self) -> dict[str, Any]:
        return {"budget_bytes": self.budget_bytes, "budget_source": self.budget_source, "peak_bytes": self.peak_bytes,
                "stages": [{**dataclasses.asdict(s), "mode": s.mode} for s in self.stages]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        fields = {f.name for f in dataclasses.fields(StagePlan)}
        return cls(tuple(StagePlan(**{k: v for k, v in s.items() if k in fields}) for s in data["stages"]),
                   int(data["budget_bytes"]), str(data["budget_source"]))

    def apply(self, stages: list[Stage]) -> list[Stage]:
        """The stages with their tile and history set."""
        return [dataclasses.replace(st, tile=p.tile, history=p.history, tiles=p.tiles) for st, p in zip(stages, self.stages)]


def budget(cfg: Config, device: torch.device) -> tuple[int | None, str]:
    """The bound a run plans for: ``max_memory``, else the device's available memory minus a margin."""
    if cfg.max_memory is not None:
        return parse_bytes(cfg.max_memory), "max_memory"
    free = devices.available_memory(device)
    if free is None:
        return None, "unknown"
    return free - max(MARGIN_MIN, int(free * MARGIN)), "available"


def history_for(cfg: Config, width: int, height: int) -> int:
    """The LBFGS history at this size: ``lbfgs_history``, shortened so history x megapixels <= HISTORY_MP."""
    return min(cfg.lbfgs_history, max(MIN_HISTORY, int(HISTORY_MP * 1e6 / (width * height))))


def _overhead(device: torch.device) -> int:
    return memory.CPU_OVERHEAD_BYTES if device.type == "cpu" else 0


def whole_bytes(width: int, height: int, cfg: Config, cut: int, history: int, device: torch.device) -> int:
    style_area = len(cfg.style or [None]) * cfg.style_scale**2
    return max(memory.estimate_bytes(height, width, cut, history, device),
               memory.setup_bytes(height, width, cut, style_area, device))


def tiled_bytes(width: int, height: int, cfg: Config, cut: int, history: int, tile: int, device: torch.device) -> int:
    """Predicted peak of a tiled stage (see the module's text)."""
    margin, pixels = halo(cut), width * height
    side_h, side_w = min(height, tile + 2 * margin), min(width, tile + 2 * margin)
    one_tile = TILE_FACTOR * memory.estimate_bytes(side_h, side_w, cut, 0, torch.device("meta"))  # no runtime/history
    content_targets = sum(e.channels * (height >> e.pools_before) * (width >> e.pools_before)
                          for name in cfg.content_layers for e in [features.layer(name)])
    style_area = len(cfg.style or [None]) * cfg.style_scale**2
    vectors = (2 * history + IMAGE_VECTORS + 3 * style_area) * 3 * pixels
    return int(4 * (vectors + content_targets) * 1.1 + one_tile) + _overhead(device)


def plan_stage(stage: Stage, cfg: Config, cut: int, device: torch.device, bound: int | None) -> StagePlan | None:
    """The plan of one stage, or None when nothing fits ``bound``."""
    w, h, grid, margin = stage.width, stage.height, grid_of(cut), halo(cut)
    first = history_for(cfg, w, h)
    histories = sorted({first, *(x for x in (50, 20, 10, MIN_HISTORY) if x < first)}, reverse=True)
    candidates = [t // grid * grid for t in TILES if grid <= t // grid * grid < max(w, h)]
    good = [t for t in candidates if t >= max(256, 2 * margin)]
    for hist in histories:
        peak = whole_bytes(w, h, cfg, cut, hist, device)
        if bound is None or peak <= bound:
            return StagePlan(stage.size, w, h, None, 1, 0, hist, peak)
        fits = [t for t in (good if hist != histories[-1] else candidates)
                if tiled_bytes(w, h, cfg, cut, hist, t, device) <= bound]
        if fits:
            t = fits[0]
            return StagePlan(stage.size, w, h, t, len(tiles(h, w, t, margin, grid)), margin, hist,
                             tiled_bytes(w, h, cfg, cut, hist, t, device))
    return None


def make(stages: list[Stage], cfg: Config, cut: int, device: torch.device, source_size: tuple[int, int]) -> Plan:
    """Plan every stage; refuse (before any work) a run whose largest stage cannot fit even tiled.

    ``source_size``: the content's width and height, to name the largest size that fits.
    """
    bound, source = budget(cfg, device)
    plans = [plan_stage(s, cfg, cut, device, bound) for s in stages]
    if all(p is not None for p in plans):
        return Plan(tuple(plans), bound or 0, source)
    smallest_tile = min(t // grid_of(cut) * grid_of(cut) for t in TILES if t >= grid_of(cut))
    floor = tiled_bytes(1, 1, cfg, cut, MIN_HISTORY, smallest_tile, device)
    what = (f"max_memory {cfg.max_memory}" if source == "max_memory"
            else f"the {max(bound, 0) / 2**30:.1f} GiB available (free memory less a margin)")
    if bound < floor:
        fix = (f"Give --max-memory {max(1, -(-floor // 2**30))}GB or more." if source == "max_memory"
               else "Free some memory first.")
        raise StylizeError(f"{what} is too small for even one tile: the smallest tiled plan needs about "
                           f"{floor / 2**30:.2f} GiB (of which {_overhead(device) / 2**30:.2f} GiB is torch itself). {fix}")

    def fits(size: int) -> bool:
        w, h = images.shorter_edge_size(*source_size, size)
        return plan_stage(Stage(size, w, h, 1), cfg, cut, device, bound) is not None

    low, high = max(MIN_SIZE, 2 ** features.LAYERS[cut].pools_before), cfg.size
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    last = stages[-1]
    need = tiled_bytes(last.width, last.height, cfg, cut, MIN_HISTORY, smallest_tile, device)
    hint = f"The largest size that fits is about {low}: use --size {low}." if fits(low) else "Free some memory first."
    raise StylizeError(f"size {cfg.size} ({last.width}x{last.height} px) needs about {need / 2**30:.1f} GiB on {device} "
                       f"even tiled, more than {what}. {hint}")
