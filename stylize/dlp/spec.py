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
    sram_kb: float = 0  # shared SRAM per cluster (recorded; the cost model does not use it yet)

    @property
    def nram_bytes(self) -> int:
        return int(self.nram_kb * 1024)

    @property
    def wram_bytes(self) -> int:
        return int(self.wram_kb * 1024)


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
    for key in ("cores", "clock_ghz", "nram_kb", "wram_kb", "dram_gbps", "dma_setup_ns", "sram_kb"):
        if key not in out:
            continue
        value = out[key]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        low = 0 if key in ("dma_setup_ns", "sram_kb") else 1e-9
        if isinstance(value, bool) or not number >= low or number == float("inf"):
            raise StylizeError(f"dlp_spec: {where}: {key}: expected a positive number, got {_show(value)}")
        out[key] = int(number) if key == "cores" else number
    for key in ("mac_per_cycle", "vector_per_cycle"):
        rates = out[key]
        if not isinstance(rates, dict) or set(rates) != set(MODES) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in rates.values()):
            raise StylizeError(f"dlp_spec: {where}: {key}: expected positive whole numbers for each of {', '.join(MODES)}, got {_show(rates)}")
    spec = DeviceSpec(**out)
    if spec.nram_bytes < 4096 or spec.wram_bytes < 4096:
        raise StylizeError(f"dlp_spec: {where}: nram_kb and wram_kb must be at least 4 (a 3x3 kernel's tiles must fit)")
    return spec
