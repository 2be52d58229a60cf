"""The profile: per-op calls, MACs, DRAM bytes, simulated time, utilization, bound, tiles, host fallbacks.

Kernels record into the active :class:`Profile` (see :mod:`stylize.dlp.runtime`); ``table()`` prints it,
``as_dict()`` is what ``<stem>.dlp-profile.json`` holds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .cost import Cost
from .spec import DeviceSpec


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

    def record(self, name: str, cost: Cost, host_s: float = 0.0) -> None:
        s = self.ops[name]
        s.calls += 1
        s.tiles += cost.tiles
        s.macs += cost.macs
        s.vector_ops += cost.vector_ops
        s.dram_bytes += cost.dram_bytes
        s.compute_s += cost.compute_s
        s.dma_s += cost.dma_s
        s.sim_s += cost.time_s
        s.host_s += host_s

    def fallback(self, op: str, host_s: float = 0.0) -> None:
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
        if s.sim_s <= 0:
            return 0.0
        hz = self.spec.clock_ghz * 1e9 * self.spec.cores
        busy = s.macs / (self.spec.mac_per_cycle[self.mode] * hz) + s.vector_ops / (self.spec.vector_per_cycle[self.mode] * hz)
        return busy / s.sim_s

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
