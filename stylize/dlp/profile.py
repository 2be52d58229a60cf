"""The profile: per-op calls, MACs, DRAM bytes, simulated time, utilization, bound, tiles, host fallbacks.

Kernels record into the active :class:`Profile` (see :mod:`stylize.dlp.runtime`); ``table()`` prints it,
``as_dict()`` is what ``<stem>.dlp-profile.json`` holds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

from .cost import Cost
from .spec import DeviceSpec

TRACE_LIMIT = 100_000  # kernels kept for the timeline: bounds the memory of a profile nobody stops


@dataclass
class OpStats:
    calls: int = 0
    tiles: int = 0
    macs: int = 0
    vector_ops: int = 0
    dram_bytes: int = 0
    compute_s: float = 0.0
    dma_s: float = 0.0
    sim_s: float = 0.0
    host_s: float = 0.0
    ideal_s: float = 0.0  # the work at peak rate (see Cost.ideal_s)


@dataclass
class Profile:
    """What ran on the simulated device, op by op."""

    spec: DeviceSpec
    mode: str
    ops: dict[str, OpStats] = field(default_factory=lambda: defaultdict(OpStats))
    fallbacks: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # aten op -> host runs
    transfers: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # h2d/d2h -> bytes
    steps: int = 0  # closure evaluations (set by the caller)
    host_s: float = 0.0  # host wall time of those steps (set by the caller)
    # The timeline (see chrome_trace): kernels are recorded from the profile's start until stop_trace(), at most
    # TRACE_LIMIT of them; the run stops it after its first evaluation, so the trace shows one evaluation.
    tracing: bool = True
    trace: list[tuple[str, Cost]] = field(default_factory=list)
    trace_fallbacks: list[tuple[int, str]] = field(default_factory=list)  # (kernels before it, op)

    def timeline(self) -> dict[str, Any]:
        """The recorded timeline in Chrome's Trace Event Format (:func:`chrome_trace`)."""
        return chrome_trace(self)

    def stop_trace(self) -> None:
        """Stop recording the timeline (call it after the evaluation the trace should show)."""
        self.tracing = False

    def record(self, name: str, cost: Cost, host_s: float = 0.0) -> None:
        if self.tracing:
            if len(self.trace) < TRACE_LIMIT:
                self.trace.append((name, cost))
            else:
                self.tracing = False
        s = self.ops[name]
        s.calls += 1
        s.tiles += cost.tiles
        s.macs += cost.macs
        s.vector_ops += cost.vector_ops
        s.dram_bytes += cost.dram_bytes
        s.compute_s += cost.compute_s
        s.dma_s += cost.dma_s
        s.sim_s += cost.time_s
        s.ideal_s += cost.ideal_s
        s.host_s += host_s

    def fallback(self, op: str, host_s: float = 0.0) -> None:
        if self.tracing:
            self.trace_fallbacks.append((len(self.trace), op))
        self.fallbacks[op] += 1
        self.ops[f"host:{op}"].calls += 1
        self.ops[f"host:{op}"].host_s += host_s

    def transfer(self, direction: str, nbytes: int) -> None:
        self.transfers[direction] += nbytes

    @property
    def sim_s(self) -> float:
        return sum(s.sim_s for s in self.ops.values())

    def utilization(self, s: OpStats) -> float:
        """Share of the device's peak matrix + vector throughput the op used over its simulated time."""
        # At each kernel's own rate (int8 mode's gradients run at the int16 rate).
        return s.ideal_s / s.sim_s if s.sim_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        rows = {}
        for name, s in sorted(self.ops.items(), key=lambda kv: -kv[1].sim_s):
            rows[name] = {**s.__dict__, "utilization": self.utilization(s),
                          "bound": "host" if name.startswith("host:") else ("compute" if s.compute_s >= s.dma_s else "memory")}
        steps = max(self.steps, 1)
        return {
            "spec": self.spec.__dict__, "mode": self.mode, "steps": self.steps,
            "totals": {"sim_s": self.sim_s, "sim_s_per_step": self.sim_s / steps, "host_s": self.host_s,
                       "host_s_per_step": self.host_s / steps, "fallbacks": sum(self.fallbacks.values()),
                       "dram_bytes": sum(s.dram_bytes for s in self.ops.values()),
                       "macs": sum(s.macs for s in self.ops.values())},
            "fallbacks": dict(self.fallbacks),
            "transfers_bytes": dict(self.transfers),
            "ops": rows,
        }

    def table(self) -> str:
        """The profile as a fixed-width text table, slowest simulated op first."""
        d = self.as_dict()
        head = f"{'op':<28}{'calls':>7}{'GMAC':>9}{'DRAM MB':>10}{'sim ms':>10}{'util':>7}  {'bound':<8}{'tiles':>9}{'host ms':>10}"
        lines = [f"dlp-sim profile: spec {self.spec.name} ({self.spec.cores} core{'s' if self.spec.cores > 1 else ''}), "
                 f"mode {self.mode}, {self.steps} steps", head, "-" * len(head)]
        for name, r in d["ops"].items():
            lines.append(f"{name[:27]:<28}{r['calls']:>7}{r['macs'] / 1e9:>9.3f}{r['dram_bytes'] / 1e6:>10.2f}"
                         f"{r['sim_s'] * 1e3:>10.3f}{r['utilization']:>7.0%}  {r['bound']:<8}{r['tiles']:>9}{r['host_s'] * 1e3:>10.1f}")
        t = d["totals"]
        lines.append("-" * len(head))
        lines.append(f"simulated device time {t['sim_s'] * 1e3:.2f} ms ({t['sim_s_per_step'] * 1e3:.3f} ms/step); host time "
                     f"{t['host_s']:.2f} s ({t['host_s_per_step'] * 1e3:.1f} ms/step); host fallbacks: {t['fallbacks']}"
                     + (f" ({', '.join(f'{k} x{v}' for k, v in d['fallbacks'].items())})" if d["fallbacks"] else ""))
        return "\n".join(lines)


# ---- the timeline as a Chrome / Perfetto trace -----------------------------------------------------------------

TRACKS = ("kernels", "matrix unit", "vector unit", "DMA")  # one thread (track) each, in this order


def chrome_trace(profile: Profile) -> dict[str, Any]:
    """The recorded kernels as a Trace Event Format object (open it in ui.perfetto.dev or chrome://tracing).

    The device runs one kernel at a time, so kernel k starts where k-1 ended on the simulated clock. Inside
    a kernel, after the launch, each tile group is one slice on the DMA track (its rounds of loads and stores)
    and one on the matrix or vector unit's track (its rounds of compute), laid out as the cost model prices
    them: groups one after another, each taking ``rounds · max(compute, dma)``, compute lagging the DMA by
    the first tile's load. Host fallbacks are instant events. Times are in microseconds, as the format wants.
    """
    us = 1e6
    pid = 1
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
         "args": {"name": f"dlp:0 ({profile.spec.name} spec, {profile.mode})"}}]
    for tid, track in enumerate(TRACKS):
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": track}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
    fallbacks = dict.fromkeys(range(len(profile.trace) + 1), None)
    for index, op in profile.trace_fallbacks:
        fallbacks[index] = (fallbacks[index] or []) + [op]
    clock = 0.0
    for k, (name, cost) in enumerate(profile.trace):
        for op in fallbacks[k] or ():
            events.append({"name": f"host fallback: {op}", "ph": "i", "s": "p", "pid": pid, "tid": 0, "ts": clock * us})
        events.append({"name": name, "cat": "kernel", "ph": "X", "pid": pid, "tid": 0, "ts": clock * us,
                       "dur": cost.time_s * us, "args": {"tiles": cost.tiles, "macs": cost.macs, "dram_bytes": cost.dram_bytes,
                                                          "bound": cost.bound, "launch_us": cost.launch_s * us}})
        start = clock + cost.launch_s
        lag = min(cost.parts[0][2], cost.parts[0][3]) if cost.parts else 0.0
        for i, (tiles, rounds, compute, dma, matrix) in enumerate(cost.parts):
            args = {"group": i, "tiles": tiles, "rounds": rounds}
            if dma > 0:
                events.append({"name": f"{name} DMA", "cat": "dma", "ph": "X", "pid": pid, "tid": TRACKS.index("DMA"),
                               "ts": start * us, "dur": rounds * dma * us, "args": args})
            if compute > 0:
                events.append({"name": name, "cat": "compute", "ph": "X", "pid": pid,
                               "tid": TRACKS.index("matrix unit" if matrix else "vector unit"),
                               "ts": (start + lag) * us, "dur": rounds * compute * us, "args": args})
            start += rounds * max(compute, dma)
        clock += cost.time_s
    for op in fallbacks[len(profile.trace)] or ():
        events.append({"name": f"host fallback: {op}", "ph": "i", "s": "p", "pid": pid, "tid": 0, "ts": clock * us})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"spec": profile.spec.name, "mode": profile.mode, "kernels": len(profile.trace),
                          "sim_us": clock * us}}


def write_chrome_trace(profile: Profile, path) -> Path:
    """Write :func:`chrome_trace` as JSON to ``path`` (``<stem>.dlp-trace.json`` in a run); returns the path."""
    path = Path(path)
    path.write_text(json.dumps(chrome_trace(profile)), encoding="utf-8")
    return path
