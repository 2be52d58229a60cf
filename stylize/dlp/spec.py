"""Device specs: the simulated DLP's buffers, units and DRAM, read from ``configs/dlp/*.yaml``.

A spec is data, like VGG19's layer table: the kernels size their tiles from it and the cost model prices
them with it. ``load("textbook")`` reads a bundled spec; ``load("my.yaml")`` any file of the same shape.
"""

from __future__ import annotations

import dataclasses
import reprlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import StylizeError, did_you_mean
from ..yamlsafe import safe_yaml

MODES = ("fp32", "fp16", "int8")
DEFAULT = "textbook"


@dataclass(frozen=True)
class DeviceSpec:
    """One simulated processor. Sizes are per core; ``cores`` share the DRAM bandwidth."""

    name: str
    cores: int  # cores working on one kernel's tiles in parallel
    clock_ghz: float
    nram_kb: float  # neuron buffer per core: input/output tiles (double-buffered: half each)
    wram_kb: float  # weight buffer per core (double-buffered: half each)
    dram_gbps: float  # DRAM bandwidth of the whole chip, GB/s (1e9 bytes/s)
    dma_setup_ns: float  # fixed cost of one DMA transfer
    mac_per_cycle: dict[str, int]  # matrix unit, per core, by numerics mode
    vector_per_cycle: dict[str, int]  # vector unit element operations, per core, by numerics mode
    sram_kb: float = 0  # shared SRAM per cluster of ``cluster_cores`` cores (0: none)
    # What the toolchain keeps for itself: BANG's compiler (cncc) reserves part of NRAM (and SRAM) for its stack
    # and spills, so kernels tile against ``nram_kb - nram_reserved_kb`` (see configs/dlp/mlu270.yaml).
    nram_reserved_kb: float = 0
    wram_reserved_kb: float = 0
    sram_reserved_kb: float = 0
    cluster_cores: int = 1  # cores sharing one SRAM
    sram_gbps: float = 0  # SRAM <-> NRAM bandwidth per cluster, GB/s (0: SRAM not used as a level)
    launch_us: float = 0  # fixed host-side cost of launching one kernel
    dram_gb: float = 8  # device DRAM capacity: allocations past it raise torch.dlp.OutOfMemoryError

    @property
    def nram_bytes(self) -> int:
        """Usable NRAM per core (after the compiler's reservation)."""
        return int((self.nram_kb - self.nram_reserved_kb) * 1024)

    @property
    def wram_bytes(self) -> int:
        """Usable WRAM per core (after the compiler's reservation)."""
        return int((self.wram_kb - self.wram_reserved_kb) * 1024)

    @property
    def sram_bytes(self) -> int:
        """Usable shared SRAM per cluster (after the compiler's reservation); 0 without one."""
        return max(0, int((self.sram_kb - self.sram_reserved_kb) * 1024))

    @property
    def dram_bytes(self) -> int:
        return int(self.dram_gb * 1024**3)

    def mac_rate(self, kind: str) -> int:
        """Matrix-unit MACs per cycle per core for ``kind``: a mode, or ``int16`` (int8 mode's gradients: an
        int16 x int8 product; half the int8 rate unless the spec says otherwise)."""
        if kind == "int16":
            return self.mac_per_cycle.get("int16", max(1, self.mac_per_cycle["int8"] // 2))
        return self.mac_per_cycle[kind]


def bundled() -> dict[str, Path]:
    root = Path(str(resources.files("stylize.configs"))) / "dlp"
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def load(name_or_path: str | Path = DEFAULT) -> DeviceSpec:
    """A bundled spec by name (``textbook``, ``mlu270``) or a YAML file; every problem is one StylizeError line."""
    specs = bundled()
    key = str(name_or_path)
    path = specs.get(key.lower()) or Path(key)
    if not path.is_file():
        hint = did_you_mean(key.lower(), specs) or " Check the path."
        raise StylizeError(f"dlp_spec: '{key}' is neither a bundled spec ({', '.join(specs)}) nor a YAML file.{hint}")
    try:
        data = safe_yaml(path.read_text(encoding="utf-8"), f"dlp_spec: {path}")
    except RecursionError:
        raise StylizeError(f"dlp_spec: {path}: the YAML nests too deeply. Fix the file.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())  # one line, whatever PyYAML says
        raise StylizeError(f"dlp_spec: {path}: invalid YAML{where}: {problem[:200]}. Fix the file's syntax.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StylizeError(f"dlp_spec: cannot read {path}: {e}") from None
    return from_dict(data, str(path))


def _show(value: Any) -> str:
    text = reprlib.repr(value)  # bounded: a spec value can be a huge nested list
    return text


def from_dict(data: Any, where: str = "spec") -> DeviceSpec:
    """Validate a mapping into a DeviceSpec (used by :func:`load` and by tests building tiny specs)."""
    if not isinstance(data, dict):
        raise StylizeError(f"dlp_spec: {where}: expected a mapping of key: value, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(DeviceSpec)}
    for key in data:
        if key not in fields:
            raise StylizeError(f"dlp_spec: {where}: unknown key '{key}'.{did_you_mean(str(key), fields) or ' Known keys: ' + ', '.join(fields) + '.'}")
    missing = [k for k, f in fields.items() if k not in data and f.default is dataclasses.MISSING]
    if missing:
        raise StylizeError(f"dlp_spec: {where}: missing {', '.join(missing)}. See configs/dlp/textbook.yaml for a complete spec.")
    out = dict(data)
    if not isinstance(out["name"], (str, int, float)) or isinstance(out["name"], bool):
        raise StylizeError(f"dlp_spec: {where}: name: expected a name, got {_show(out['name'])}")
    out["name"] = str(out["name"])
    zero_ok = ("dma_setup_ns", "sram_kb", "nram_reserved_kb", "wram_reserved_kb", "sram_reserved_kb", "sram_gbps", "launch_us")
    for key in ("cores", "clock_ghz", "nram_kb", "wram_kb", "dram_gbps", "dram_gb", "cluster_cores", *zero_ok):
        if key not in out:
            continue
        value = out[key]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        low = 0 if key in zero_ok else 1e-9
        if isinstance(value, bool) or not number >= low or number == float("inf"):
            raise StylizeError(f"dlp_spec: {where}: {key}: expected a positive number, got {_show(value)}")
        out[key] = int(number) if key in ("cores", "cluster_cores") else number
    for key in ("mac_per_cycle", "vector_per_cycle"):
        rates = out[key]
        allowed = set(MODES) | ({"int16"} if key == "mac_per_cycle" else set())  # int16: gradients (optional)
        if not isinstance(rates, dict) or not set(MODES) <= set(rates) <= allowed or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in rates.values()):
            raise StylizeError(f"dlp_spec: {where}: {key}: expected positive whole numbers for each of {', '.join(MODES)}, got {_show(rates)}")
    spec = DeviceSpec(**out)
    if spec.nram_bytes < 4096 or spec.wram_bytes < 4096:
        raise StylizeError(f"dlp_spec: {where}: nram_kb and wram_kb, less their reservations, must be at least 4 (a 3x3 "
                           "kernel's tiles must fit)")
    return spec
