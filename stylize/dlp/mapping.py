"""A small mapper (in the spirit of Timeloop): per conv layer, the loop order and tile shape with the least DRAM
traffic on a spec, and the traffic and time of any mapping under one analytic model.

A stride-1 ``r x s`` convolution producing ``k x h x w`` from ``c`` channels is three loops over tiles:
``P`` (spatial tiles of ``th x tw``), ``K`` (output-channel blocks of ``kb``) and ``C`` (input-channel blocks of
``cb``). One tile of each tensor sits on chip: the input tile with its halo and the fp32 accumulator in half the
NRAM, the weight block in half the WRAM (the other halves double-buffer). A tensor's tile is reloaded whenever
a loop it depends on advances; loops it does not depend on that run *inside* its innermost relevant loop reuse
it (a loop of one trip moves nothing). So, with the loops ordered outer to inner:

- input (depends on P, C) is read ``nK`` times over if K runs outside its innermost relevant loop, else once;
- weights (K, C) are read ``nP`` times over if P runs outside theirs, else once;
- outputs (P, K) are written once if C runs inside theirs; else each output tile is visited ``nC`` times and
  its partial sums go to DRAM and back (``2 · 4`` bytes per element per extra visit).

Multi-core parts split P over the cores. Every core needs the weights: without a shared SRAM each core reads
them from DRAM; with one, a cluster reads each weight block once into SRAM and its cores copy it from there
(the SRAM is a level of the hierarchy: its traffic is priced at ``sram_gbps`` per cluster). Time is the
roofline of compute, DRAM (bytes / bandwidth + a setup per DMA) and SRAM, plus the kernel launch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

from . import numerics
from .cost import TileGroup
from .spec import DeviceSpec

ACC_BYTES = 4


@dataclass(frozen=True)
class ConvPlan:
    th: int  # output tile height
    tw: int  # output tile width
    ci_blk: int  # input channels per block
    co_blk: int  # output channels per WRAM block


@lru_cache(maxsize=256)
def plan(cin: int, cout: int, kh: int, kw: int, ho: int, wo: int, nram: int, wram: int, in_b: int, w_b: int) -> ConvPlan:
    """The largest tiles that fit the buffers (half of each: double buffering)."""
    nb, wb = nram // 2, wram // 2
    ci_blk = max(1, min(cin, wb // (kh * kw * w_b), (nb // 2) // (kh * kw * in_b)))
    co_blk = max(1, min(cout, wb // (ci_blk * kh * kw * w_b), (nb - ci_blk * kh * kw * in_b) // ACC_BYTES))

    def fits(th: int, tw: int) -> bool:
        return ci_blk * (th + kh - 1) * (tw + kw - 1) * in_b + co_blk * th * tw * ACC_BYTES <= nb

    t = 1
    while t < max(ho, wo) and fits(min(t + 1, ho), min(t + 1, wo)):
        t += 1
    th, tw = min(t, ho), min(t, wo)
    while tw < wo and fits(th, tw + 1):
        tw += 1
    while th < ho and fits(th + 1, tw):
        th += 1
    return ConvPlan(th, tw, ci_blk, co_blk)
ORDERS = tuple("".join(p) for p in itertools.permutations("PKC"))


@dataclass(frozen=True)
class ConvLayer:
    c: int  # input channels
    k: int  # output channels
    h: int  # output height (= input height: 'same' padding)
    w: int  # output width
    r: int = 3
    s: int = 3
    name: str = ""


@dataclass(frozen=True)
class Mapping:
    order: str  # the tile loops, outer to inner: a permutation of "PKC"
    th: int
    tw: int
    cb: int
    kb: int


@dataclass(frozen=True)
class Traffic:
    input: int  # DRAM bytes read of the input (halos included)
    weights: int  # DRAM bytes read of the weights
    output: int  # DRAM bytes of the outputs (partial sums included)
    sram: int  # bytes moved SRAM -> cores
    dmas: int  # DMA transfers
    compute_s: float
    dma_s: float
    sram_s: float
    time_s: float

    @property
    def dram(self) -> int:
        return self.input + self.weights + self.output


def _blocks(total: int, block: int) -> int:
    return math.ceil(total / block)


def fits(layer: ConvLayer, m: Mapping, spec: DeviceSpec, in_b: int, w_b: int) -> bool:
    nram = m.cb * (m.th + layer.r - 1) * (m.tw + layer.s - 1) * in_b + m.kb * m.th * m.tw * ACC_BYTES
    return nram <= spec.nram_bytes // 2 and m.kb * m.cb * layer.r * layer.s * w_b <= spec.wram_bytes // 2


def bytes_per(mode: str, role: str = "activation") -> tuple[int, int, int]:
    """(input, weight, output) bytes per element in ``mode``; ``role`` is the input's (and output's) role."""
    return numerics.element_bytes(mode, role), numerics.element_bytes(mode, "weight"), numerics.store_bytes(mode, role)


def traffic(layer: ConvLayer, m: Mapping, spec: DeviceSpec, mode: str = "fp32", use_sram: bool = True,
            role: str = "activation") -> Traffic:
    """DRAM/SRAM traffic and simulated time of ``layer`` under mapping ``m`` (see the module docstring)."""
    in_b, w_b, out_b = bytes_per(mode, role)
    nh, nw = _blocks(layer.h, m.th), _blocks(layer.w, m.tw)
    trips = {"P": nh * nw, "K": _blocks(layer.k, m.kb), "C": _blocks(layer.c, m.cb)}
    cores = min(spec.cores, trips["P"])
    per_core = dict(trips, P=_blocks(trips["P"], cores))
    pos = {loop: m.order.index(loop) for loop in "PKC"}

    def visits(irrelevant: str, relevant: str, counts: dict) -> int:
        # A loop of one trip moves no tile: only relevant loops that really iterate end the reuse.
        inner = [pos[x] for x in relevant if counts[x] > 1]
        return counts[irrelevant] if inner and pos[irrelevant] < max(inner) else 1

    v_in, v_out = visits("K", "PC", trips), visits("C", "PK", trips)
    v_w = visits("P", "KC", per_core)  # per core: each core walks its own share of P
    halo_in = layer.c * (layer.h + nh * (layer.r - 1)) * (layer.w + nw * (layer.s - 1)) * in_b
    weights_once = layer.k * layer.c * layer.r * layer.s * w_b
    clusters = math.ceil(cores / spec.cluster_cores)
    shared = use_sram and spec.sram_bytes > 0 and m.kb * m.cb * layer.r * layer.s * w_b <= spec.sram_bytes // 2
    readers = clusters if shared else cores  # who reads the weights from DRAM
    w_dram = v_w * weights_once * readers
    sram = v_w * weights_once * cores if shared else 0
    out = layer.k * layer.h * layer.w * (out_b + (v_out - 1) * 2 * ACC_BYTES)
    dmas = v_in * trips["P"] * trips["C"] + v_w * trips["K"] * trips["C"] * readers + trips["P"] * trips["K"] * (2 * v_out - 1)
    hz = spec.clock_ghz * 1e9
    rate = spec.mac_rate("int16" if mode == "int8" and role == "gradient" else mode)
    compute = layer.k * layer.c * layer.r * layer.s * layer.h * layer.w / (rate * hz * cores)
    dma = (halo_in * v_in + w_dram + out) / (spec.dram_gbps * 1e9) + dmas * spec.dma_setup_ns * 1e-9 / cores
    sram_s = sram / (spec.sram_gbps * 1e9 * clusters) if sram else 0.0
    return Traffic(halo_in * v_in, w_dram, out, sram, dmas, compute, dma, sram_s,
                   max(compute, dma, sram_s) + spec.launch_us * 1e-6)


def _halvings(n: int) -> list[int]:
    out, v = [], n
    while v >= 1:
        out.append(v)
        v = v // 2 if v > 1 else 0
    return out


def candidates(layer: ConvLayer, spec: DeviceSpec, mode: str = "fp32", role: str = "activation"):
    """Mappings that fit the buffers: channel blocks and tile sides by halving, the other side as large as fits."""
    in_b, w_b, _ = bytes_per(mode, role)
    nb = spec.nram_bytes // 2
    r1, s1 = layer.r - 1, layer.s - 1
    def sizes(n: int, splits: int) -> list[int]:  # halvings, and n cut into 1..splits balanced blocks
        return sorted(set(_halvings(n)) | {math.ceil(n / j) for j in range(1, min(n, splits) + 1)}, reverse=True)

    for cb, kb in itertools.product(sizes(layer.c, 4), sizes(layer.k, 8)):
        if kb * cb * layer.r * layer.s * w_b > spec.wram_bytes // 2:
            continue
        shapes = set()
        for th in _halvings(layer.h):  # the widest tile for this height
            tw = (nb - cb * (th + r1) * s1 * in_b) // (cb * (th + r1) * in_b + kb * th * ACC_BYTES)
            if tw >= 1:
                shapes.add((th, min(tw, layer.w)))
        for tw in _halvings(layer.w):  # the tallest for this width
            th = (nb - cb * (tw + s1) * r1 * in_b) // (cb * (tw + s1) * in_b + kb * tw * ACC_BYTES)
            if th >= 1:
                shapes.add((min(th, layer.h), tw))
        for (th, tw), order in itertools.product(shapes, ORDERS):
            yield Mapping(order, th, tw, cb, kb)


SLACK = 0.02  # mappings within 2 % of the least traffic compete on time


def search(layer: ConvLayer, spec: DeviceSpec, mode: str = "fp32", role: str = "activation") -> tuple[Mapping, Traffic]:
    """The mapping with the least DRAM traffic; among those within :data:`SLACK` of it, the fastest (a mapping
    that saves a few bytes with many more DMAs, each paying its setup, is not worth it)."""
    plan = current(layer, spec, mode, role)  # the kernel's own tiles, in every order: never worse than no search
    planned = [Mapping(o, plan.th, plan.tw, plan.cb, plan.kb) for o in ORDERS]
    scored = [(m, traffic(layer, m, spec, mode, role=role)) for m in itertools.chain(planned, candidates(layer, spec, mode, role))]
    if not scored:
        raise ValueError(f"no mapping of {layer} fits the {spec.name} spec's buffers")
    least = min(t.dram for _, t in scored)
    return min(((m, t) for m, t in scored if t.dram <= least * (1 + SLACK)), key=lambda mt: (mt[1].time_s, mt[1].dram, mt[1].dmas))


def current(layer: ConvLayer, spec: DeviceSpec, mode: str = "fp32", role: str = "activation") -> Mapping:
    """The mapping the conv kernel uses without a search (:func:`kernels.conv.plan`): the largest Cin block and
    tiles that fit; weight-stationary (K outside P) when Cin fits in one block, else each tile walks its Cin
    blocks (P, K outside C)."""
    in_b, w_b, _ = bytes_per(mode, role)
    p = plan(layer.c, layer.k, layer.r, layer.s, layer.h, layer.w, spec.nram_bytes, spec.wram_bytes, in_b, w_b)
    return Mapping("KPC" if p.ci_blk >= layer.c else "PKC", p.th, p.tw, p.ci_blk, p.co_blk)


_chosen: dict = {}


def choose(layer: ConvLayer, spec: DeviceSpec, mode: str, role: str = "activation") -> tuple[Mapping, Traffic]:
    """:func:`search`, remembered per (layer, spec, mode, role): the kernel asks on every call."""
    key = (layer, repr(spec), mode, role)
    if key not in _chosen:
        _chosen[key] = search(layer, spec, mode, role)
    return _chosen[key]


def tile_groups(layer: ConvLayer, m: Mapping, t: Traffic, n: int = 1, epilogue_ops: int = 1) -> list[TileGroup]:
    """The mapping's traffic and work as tile groups for :func:`cost.estimate`: one step per (P, K, C) tile
    iteration of each of ``n`` images, the totals shared evenly (the last step takes the remainders)."""
    steps = _blocks(layer.h, m.th) * _blocks(layer.w, m.tw) * _blocks(layer.k, m.kb) * _blocks(layer.c, m.cb)
    total = {"in": t.input + t.weights, "out": t.output, "macs": layer.k * layer.c * layer.r * layer.s * layer.h * layer.w,
             "vec": epilogue_ops * layer.k * layer.h * layer.w, "dmas": t.dmas}
    even = {key: v // steps for key, v in total.items()}
    last = {key: v - even[key] * (steps - 1) for key, v in total.items()}

    def group(count, v):
        return TileGroup(count * n, v["in"], v["out"], v["macs"], v["vec"], v["dmas"])

    return [group(steps - 1, even), group(1, last)] if steps > 1 else [group(1, last)]
