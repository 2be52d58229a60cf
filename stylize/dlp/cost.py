"""The cost model: a tiled roofline with double buffering.

A kernel is a list of tile groups (tiles of one shape). For one tile on one core

    compute = MACs / (mac_per_cycle[mode] · f) + vector_ops / (vector_per_cycle[mode] · f)
    dma     = (bytes_in + bytes_out) / (B / active_cores) + dmas · dma_setup

where ``B`` is the chip's DRAM bandwidth, shared by the cores that work at once. With double buffering a
core loads tile i+1 and stores tile i-1 while it computes tile i, so a steady tile costs ``max(compute, dma)``;
only the first load and the last compute+store are not hidden. With ``R = ceil(tiles / cores)`` rounds:

    time = launch + Σ_groups R · max(compute, dma) + min(compute, dma) of the first group

``launch`` is the spec's fixed cost of starting a kernel (``launch_us``).

A kernel is *compute-bound* when its summed compute exceeds its summed DMA time, else *memory-bound*.
What it does not capture: DRAM page and bank effects, contention between DMA and compute for the buffers,
instruction issue and synchronisation, the shared SRAM (recorded in specs, unused here), cache-free host
transfers (host<->device copies are counted in bytes but not timed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .spec import DeviceSpec


@dataclass(frozen=True)
class TileGroup:
    """``count`` tiles with the same work."""

    count: int
    bytes_in: int = 0  # DMA DRAM -> on-chip per tile (input tile incl. halo, weights when reloaded)
    bytes_out: int = 0  # DMA on-chip -> DRAM per tile
    macs: int = 0  # matrix-unit multiply-accumulates per tile
    vector_ops: int = 0  # vector-unit element operations per tile
    dmas: int = 2  # DMA transfers per tile (each pays the setup)


@dataclass
class Cost:
    """A kernel call priced on a spec (seconds, bytes, counts)."""

    tiles: int = 0
    macs: int = 0
    vector_ops: int = 0
    dram_bytes: int = 0
    compute_s: float = 0.0
    dma_s: float = 0.0
    time_s: float = 0.0
    launch_s: float = 0.0  # the kernel launch's share of time_s
    ideal_s: float = 0.0  # the work at the chip's peak rates (every core busy): utilization = ideal_s / time_s
    # Per tile group, for the timeline (profile.chrome_trace): (tiles, rounds, compute_s and dma_s per round,
    # whether the matrix unit does the work (else the vector unit)).
    parts: list[tuple[int, int, float, float, bool]] = field(default_factory=list)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.dma_s else "memory"


def estimate(groups: list[TileGroup], spec: DeviceSpec, mode: str, mac_kind: str | None = None) -> Cost:
    """Price a kernel's tiles with the tiled roofline (see the module docstring)."""
    groups = [g for g in groups if g.count > 0]
    cost = Cost()
    total_tiles = sum(g.count for g in groups)
    if not groups:
        return cost
    hz = spec.clock_ghz * 1e9
    active = min(spec.cores, total_tiles)
    bandwidth = spec.dram_gbps * 1e9 / active  # bytes/s seen by one of the active cores
    setup = spec.dma_setup_ns * 1e-9
    first = None
    for g in groups:
        compute = g.macs / (spec.mac_rate(mac_kind or mode) * hz) + g.vector_ops / (spec.vector_per_cycle[mode] * hz)
        dma = (g.bytes_in + g.bytes_out) / bandwidth + g.dmas * setup
        rounds = math.ceil(g.count / spec.cores)
        cost.parts.append((g.count, rounds, compute, dma, g.macs > 0))
        cost.ideal_s += g.count * compute / spec.cores
        cost.time_s += rounds * max(compute, dma)
        cost.compute_s += rounds * compute
        cost.dma_s += rounds * dma
        if first is None:
            first = min(compute, dma)
        cost.tiles += g.count
        cost.macs += g.count * g.macs
        cost.vector_ops += g.count * g.vector_ops
        cost.dram_bytes += g.count * (g.bytes_in + g.bytes_out)
    cost.launch_s = spec.launch_us * 1e-6
    cost.time_s += first + cost.launch_s
    return cost


def streaming(numel_in: int, numel_out: int, vector_ops: int, spec: DeviceSpec, mode: str,
              bytes_per: int, out_bytes_per: int | None = None) -> list[TileGroup]:
    """Tiles of a vector-unit kernel that streams its operands through NRAM (elementwise, pooling,
    reductions): each tile holds as many elements as half the NRAM (double buffering) takes."""
    out_bytes_per = bytes_per if out_bytes_per is None else out_bytes_per
    total_bytes = numel_in * bytes_per + numel_out * out_bytes_per
    tiles = max(1, math.ceil(total_bytes / (spec.nram_bytes // 2)))
    share = lambda n: n // tiles  # noqa: E731 - even shares; the remainder goes to the last tile
    groups = [TileGroup(tiles - 1, share(numel_in) * bytes_per, share(numel_out) * out_bytes_per, 0, share(vector_ops))]
    rest = lambda n: n - share(n) * (tiles - 1)  # noqa: E731
    groups.append(TileGroup(1, rest(numel_in) * bytes_per, rest(numel_out) * out_bytes_per, 0, rest(vector_ops)))
    return groups
