"""The device's state: which spec it simulates, in which numerics mode, and the profile being recorded.

One process has one simulated device, like one ``cuda:0``; :func:`configure` sets it up for a run.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

from . import spec as specs
from .cost import TileGroup, estimate
from .profile import Profile


@dataclass
class Runtime:
    spec: specs.DeviceSpec
    mode: str
    profile: Profile


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


def record(name: str, groups: list[TileGroup], started: float) -> None:
    """Price ``groups`` on the current spec and add them, with the host time since ``started``, to the profile."""
    rt = current()
    rt.profile.record(name, estimate(groups, rt.spec, rt.mode), time.perf_counter() - started)
