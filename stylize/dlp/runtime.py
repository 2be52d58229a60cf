"""The device's state: which spec it simulates, in which numerics mode, and the profile being recorded.

One process has one simulated device, like one ``cuda:0``; :func:`configure` sets it up for a run.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from . import spec as specs
from .cost import TileGroup, estimate
from .profile import Profile


@dataclass
class Runtime:
    spec: specs.DeviceSpec
    mode: str
    profile: Profile
    # int8 mode with a `stylize quantize` artefact: host weight storage (data_ptr) -> that conv's calibrated
    # {input_scale, input_zero_point, weight_scale}; see :func:`calibrate`.
    calibration: dict[int, dict] = field(default_factory=dict)


_current: Runtime | None = None


def current() -> Runtime:
    global _current
    if _current is None:
        configure()
    return _current


def configure(spec: str | specs.DeviceSpec = specs.DEFAULT, mode: str = "fp32") -> Profile:
    """Select the simulated spec and numerics mode; start and return a fresh profile."""
    global _current
    if mode not in specs.MODES:
        raise ValueError(f"unknown dlp mode {mode!r}; allowed: {', '.join(specs.MODES)}")
    spec = spec if isinstance(spec, specs.DeviceSpec) else specs.load(spec)
    _current = Runtime(spec, mode, Profile(spec, mode))
    return _current.profile


@contextmanager
def session(spec: str | specs.DeviceSpec = specs.DEFAULT, mode: str = "fp32"):
    """``with session("mlu270", "int8") as profile:`` — the previous configuration comes back afterwards."""
    global _current
    previous = _current
    try:
        yield configure(spec, mode)
    finally:
        _current = previous


def calibrate(convs: list[tuple[torch.Tensor, dict]]) -> int:
    """Use static, calibrated scales for these convs (``(weight on the device, its qparams)`` pairs from
    ``stylize quantize``) in int8 mode, instead of dynamic per-tensor positions. Kernels find a conv by its
    weight's host storage, which moving or fusing the module does not change. Returns how many were set."""
    rt = current()
    for weight, params in convs:
        host = getattr(weight, "_data", weight)
        rt.calibration[host.data_ptr()] = {"input_scale": float(params["input_scale"]),
                                           "input_zero_point": int(params["input_zero_point"]),
                                           "weight_scale": params["weight_scale"].float()}
    return len(convs)


def calibrated(weight: torch.Tensor) -> dict | None:
    """The calibrated qparams of the conv whose (host) weight this is, in int8 mode; else None."""
    rt = current()
    return rt.calibration.get(weight.data_ptr()) if rt.mode == "int8" and rt.calibration else None


def record(name: str, groups: list[TileGroup], started: float, mac_kind: str | None = None) -> None:
    """Price ``groups`` on the current spec and add them, with the host time since ``started``, to the profile.
    ``mac_kind``: the matrix unit's rate when it differs from the mode's (``int16`` for int8 mode's gradients)."""
    rt = current()
    rt.profile.record(name, estimate(groups, rt.spec, rt.mode, mac_kind), time.perf_counter() - started)
