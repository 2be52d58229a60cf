"""The typed settings of ``stylize prune`` and ``stylize quantize``: the single source of their defaults, for the
CLI and the Python API alike (no torch here: the CLI reads them at start-up)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DTYPES = ("int8",)
PROBE_SIZE = 128  # the probe stylization that scores an artefact: shorter edge in px...
PROBE_STEPS = 100  # ...and evaluations


@dataclass
class PruneConfig:
    """``stylize prune``'s settings and their defaults (the CLI reads its defaults from here)."""

    output: str | Path  # the pruned state_dict (.pt); the report goes to <stem>.report.json
    weights: str = "auto"  # auto | imagenet | untrained | PATH: the weights to prune
    method: str = "l1-unstructured"  # l1-unstructured | random-unstructured (global, the seed's) | l1-structured
    amount: float = 0.3  # fraction of the weights (unstructured, global) or of each layer's channels (structured)
    layers: Sequence[str] = ()  # convs to prune; empty: every conv up to the config's last loss layer
    config: str | None = None  # the config whose style model is compressed and probed (default: default)
    sets: Sequence[str] = ()  # --set key=value items of that config
    report: bool = True  # score the result on a probe stylization
    probe_size: int = PROBE_SIZE  # the probe run: shorter edge in px
    probe_steps: int = PROBE_STEPS  # the probe run: evaluations
    seed: int = 0  # random-unstructured's generator


@dataclass
class QuantizeConfig:
    """``stylize quantize``'s settings and their defaults (the CLI reads its defaults from here)."""

    output: str | Path  # the int8 artefact (.pt); the report goes to <stem>.report.json
    weights: str = "auto"  # auto | imagenet | untrained | PATH: the weights to quantize
    dtype: str = "int8"  # weight type (per-channel, symmetric); activations are uint8 per tensor
    calibration: str | Path | None = None  # folder of calibration images (default: the bundled demo pair)
    config: str | None = None
    sets: Sequence[str] = ()
    report: bool = True
    probe_size: int = PROBE_SIZE
    probe_steps: int = PROBE_STEPS
