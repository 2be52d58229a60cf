"""One typed config: the single source of defaults.

Precedence, lowest first: the defaults below < a YAML file (``-c``) < ``--set key=value`` < explicit CLI
flags. Everything is validated once, in :func:`build_config`, and errors read ``field: message``.
The defaults reproduce the seed (the PyTorch neural-style tutorial); ``configs/default.yaml`` spells
them out and a test keeps the two equal.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import features, regions
from .errors import StylizeError, did_you_mean
from .yamlsafe import safe_yaml

DEVICES = ("auto", "cpu", "cuda", "dlp-sim")
WEIGHTS = ("auto", "imagenet", "untrained")
INITS = ("noise", "content", "gray")
OPTIMIZERS = ("lbfgs", "adam")
SCALES = ("auto", "none", "ladder")
POOLINGS = features.POOLINGS  # max | avg
NORMALIZE = ("none", "targets")
RECIPES = ("auto", "seed", "untrained")
LINE_SEARCHES = ("none", "strong_wolfe")
MIN_SIZE = 16  # the default layers' deepest tap (conv3_1) sits after 2 poolings; 16 px leaves 4x4 maps
MAX_SIZE = 65536  # a sanity bound; what fits in memory is checked against the machine at run time


def _layers(*names: str) -> dict[str, float]:
    return {n: 1.0 for n in names}


@dataclass
class Config:
    """Everything a run needs. Field comments are the reference (docs/configuration.md's config table mirrors them)."""

    content: str | None = None  # content image path; none = the bundled demo content
    style: list[str] | None = None  # style image path(s); several are blended (style_blend); none = the bundled demo style
    style_blend: list[float] | None = None  # one weight per style image (normalized to sum 1); none = equal
    output: str | None = None  # output image (.png/.jpg); none = outputs/<content>__<style>.png
    size: int | None = None  # shorter edge in px; none = 512 on CUDA, 128 otherwise (the seed's rule)
    steps: int = 300  # closure evaluations (the seed counts these, not LBFGS steps)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | dlp-sim
    weights: str = "auto"  # auto | imagenet | untrained | path to a VGG19 state_dict
    init: str = "noise"  # noise (torch.randn, as the seed) | content | gray | path to an image
    seed: int = 0  # seeds the noise init
    style_weight: float = 1e6
    content_weight: float = 1.0
    style_layers: dict[str, float] = field(default_factory=lambda: _layers("conv_1", "conv_2", "conv_3", "conv_4", "conv_5"))
    content_layers: dict[str, float] = field(default_factory=lambda: _layers("conv_4"))
    lbfgs_max_iter: int = 20  # evaluations per LBFGS step (torch default, as in the seed)
    lbfgs_history: int = 100  # LBFGS history size (torch default, as in the seed)
    lbfgs_line_search: str = "none"  # none (torch's default, the seed: fixed steps) | strong_wolfe
    style_scale: float = 1.0  # style image size relative to the content's (1: the content's size, as the seed)
    tv_weight: float = 0.0  # total-variation loss weight (0: none, as the seed); see losses.tv_loss
    original_colors: bool = False  # keep the content's colours: the result's luminance with the content's chroma (YCbCr)
    match_histogram: bool = False  # match the style images' colour histograms to the content's before the run
    # Recolour the content to the style images' colour histograms before the run (colors.style_palette): the
    # content target and the init carry the painting's palette. Not applied with original_colors or
    # match_histogram, which keep the content's colours.
    style_palette: bool = False
    optimizer: str = "lbfgs"  # lbfgs (the seed; the lbfgs_* keys) | adam (lr; the lbfgs_* keys do not apply)
    lr: float = 0.02  # adam's learning rate (the image is in [0, 1])
    # Sizes run coarse to fine, each starting from the previous result upsampled; the last is `size`.
    # auto: a short half-size stage first on the fast path (steps // 6, at most 50); none: `size` only;
    # ladder: a sqrt(2) ladder from 128 px up; or a list of sizes, SIZE or SIZE:STEPS (default: `steps` each).
    scales: str | list[int | str] = "auto"
    blowup_factor: float = 10.0  # inf/NaN, or 10 losses in a row above N x the best, restore the best image; 0: off
    # Li et al. 2017's Laplacian content term: weight * relative (with normalize: targets) squared error between
    # the Laplacians of the image and of the content, both average-pooled laplacian_pool x laplacian_pool
    # (losses.laplacian). It holds edges and thin lines; 0: none (the seed).
    laplacian_weight: float = 0.0
    laplacian_pool: int = 4
    # Stop a stage early (status: converged) once its best loss fell by less than plateau_tol (relative) over its
    # last plateau_window evaluations (stylize/plateau.py). 0: off, every stage runs all its steps (the seed).
    plateau_tol: float = 0.0
    plateau_window: int = 50
    # The memory a run may use (e.g. 4GB, 512MiB; stylize/plan.py plans whole-image or tiled evaluation, the tile
    # and the LBFGS history to fit it); none: the memory available minus a margin.
    max_memory: str | None = None
    log_every: int = 50  # print losses every N steps (the seed prints every 50)
    save_every: int = 0  # write <stem>.stepNNNN.png every N steps (0: never)
    checkpoint_every: int = 0  # write <stem>.ckpt (resumable with --resume) every N steps (0: never)
    tensorboard: str | None = None  # a folder for TensorBoard logs (needs the tensorboard extra)
    exact: bool = False  # true: run the seed's unfused graph (bit-for-bit the tutorial, ~2x slower on CPU)
    dlp_spec: str = "textbook"  # dlp-sim only: a bundled device spec (textbook, mlu270) or a spec YAML file
    dlp_mode: str = "fp32"  # dlp-sim only: numerics fp32 | fp16 | int8 (int8 weights/activations, int16 gradients)
    profile: bool = False  # dlp-sim only: print the per-op device profile and write <stem>.dlp-profile.json
    pooling: str = "max"  # max (VGG19's, the seed) | avg: the pooling layers of the feature network
    normalize: str = "none"  # none (the seed) | targets: each layer's weight / mean(target**2), see losses.target_scale
    # auto: the untrained recipe when `weights: auto` falls back to untrained weights, else the values as given;
    # seed: the values as given; untrained: configs/untrained.yaml's values for every key not set explicitly.
    # build_config turns auto into seed when a key the recipe sets was given (YAML, --set or flag), run() resolves
    # the rest. Not compared: it says how the values were chosen (configs/default.yaml gives recipe: seed).
    recipe: str = field(default="auto", compare=False)
    # stylize video (Ruder et al. 2016): weight of the temporal term, the mean squared difference between a
    # frame and the previous output warped by optical flow, over the pixels the flow is consistent at.
    temporal_weight: float = 1e4
    # Regional styles (Gatys et al. 2017; docs/regions.md). regions: MASK=STYLE[@STYLE_MAP][:WEIGHT] per region, a
    # grayscale mask over the content (soft values allowed) and its style image; seg + seg_colors: a colour-coded
    # map of the content and '#rrggbb=STYLE[@STYLE_MAP][:WEIGHT]' per colour. Pixels no mask covers get the content
    # only, or background_style. mask_erode: erode the masks N px at each layer's size. Their style images are the
    # run's (`style` is then left out, or lists exactly them). Not on dlp-sim (no masked Gram kernel).
    regions: list[str] | None = None
    background_style: str | None = None
    seg: str | None = None
    seg_colors: list[str] | None = None
    mask_erode: int = 0
    # Scale control (same paper): the coarse style taps (the deeper half of style_layers) take style_coarse's
    # statistics, the fine ones (the shallower half, features.split_taps) style_fine's. Both or neither.
    style_coarse: str | None = None
    style_fine: str | None = None


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Config)}


def _fail(name: str, message: str) -> StylizeError:
    return StylizeError(f"{name}: {message}")


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxstring, _SHOW.maxother = 2, 6, 6, 60, 60


def _show(value: Any) -> str:
    """A value for an error message, bounded: an alias-nested YAML list can be huge, and its repr in a message
    took 78 s, 3.3 GB and printed 400 MB."""
    text = _SHOW.repr(value)
    return text if len(text) <= 120 else f"{text[:100]}...{text[-15:]}"


def _number(name: str, value: Any, kind: type, low: float, high: float | None = None) -> int | float:
    """Parse and range-check a number. YAML reads ``1e6`` as a string and ``--set`` gives strings, so any
    spelling Python's ``float()`` reads is accepted; a whole-number field takes ``300``, ``300.0`` or ``3e2``."""
    what = "a whole number" if kind is int else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _fail(name, f"expected {what}, got {_show(value)}")
    try:
        number = int(value) if isinstance(value, int) and kind is int else float(value)
        if kind is int and isinstance(number, float):
            if not number.is_integer():
                raise ValueError
            number = int(number)
    except (ValueError, OverflowError):
        raise _fail(name, f"expected {what}, got {_show(value)}") from None
    def show(x: float) -> str:
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"

    allowed = f">= {show(low)}" if high is None else f"between {show(low)} and {show(high)}"
    if (isinstance(number, float) and math.isnan(number)) or number < low or (high is not None and number > high) \
            or (kind is float and math.isinf(number)):
        raise _fail(name, f"{_show(value)} is out of range: allowed {allowed}")
    return number if kind is int else float(number)


def _layer_weights(name: str, value: Any) -> dict[str, float]:
    # A list gives every layer weight 1 (the seed); a mapping gives per-layer weights (gatys.yaml).
    if value is None:
        return {}
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Sequence):
        if not all(isinstance(v, str) for v in value):
            raise _fail(name, f"expected a list of layer names, got {_show(value)}")
        value = {v: 1.0 for v in value}
    if not isinstance(value, Mapping):
        raise _fail(name, f"expected a list of layer names or a mapping layer: weight, got {_show(value)}")
    out: dict[str, float] = {}
    seen: dict[int, str] = {}
    for layer_name, weight in value.items():
        if not isinstance(layer_name, str):
            raise _fail(name, f"expected layer names such as conv_1 or conv4_2, got {_show(layer_name)}")
        try:
            index = features.layer(layer_name).index
        except StylizeError as e:
            raise _fail(name, str(e)) from None
        if index in seen:
            raise _fail(name, f"'{seen[index]}' and '{layer_name}' are the same layer; name it once.")
        seen[index] = layer_name
        out[layer_name] = _number(f"{name}.{layer_name}", weight, float, 0.0)
    return out


def _choice_or_path(name: str, value: Any, choices: Sequence[str]) -> str:
    """A keyword (case-insensitive) or the path of an existing file."""
    if not isinstance(value, str) or not value:
        raise _fail(name, f"expected one of {', '.join(choices)} or a file path, got {_show(value)}")
    if value.lower() in choices:
        return value.lower()
    if not Path(value).is_file():
        hint = did_you_mean(value.lower(), choices) or " Check the path."
        raise _fail(name, f"'{value}' is not one of {', '.join(choices)}, nor an existing file.{hint}")
    return value


def _bool(name: str, value: Any) -> bool:
    """YAML's true/false, or (from --set) true/false/yes/no/on/off/1/0 in any case."""
    words = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in words:
        return words[value.lower()]
    raise _fail(name, f"expected true or false, got {_show(value)}")


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """A keyword, case-insensitive."""
    if isinstance(value, str) and value.lower() in choices:
        return value.lower()
    hint = did_you_mean(str(value).lower(), choices) if isinstance(value, str) else ""
    raise _fail(name, f"unknown value {_show(value)}.{hint} Allowed: {', '.join(choices)}")


def _paths(name: str, value: Any) -> list[str] | None:
    """One file path or a list of them (``--set style=[a.jpg,b.jpg]``; a comma list from the CLI)."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(v, str) and v for v in items):
        raise _fail(name, f"expected a file path or a list of them, got {_show(value)}")
    return list(items)


def _numbers(name: str, value: Any) -> list[float] | None:
    """A list of non-negative numbers, from YAML or a comma list (``0.7,0.3``)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, Sequence) or not value:
        raise _fail(name, f"expected a list of numbers such as 0.7,0.3, got {_show(value)}")
    return [_number(f"{name}[{i}]", v, float, 0.0) for i, v in enumerate(value)]


def _scales(value: Any) -> str | list[int | str]:
    """auto | none | ladder, or sizes SIZE or SIZE:STEPS (a list, or a comma string from the CLI), increasing."""
    if isinstance(value, str) and value.lower() in SCALES:
        return value.lower()
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    hint = "Use auto, none, ladder or sizes such as 256,512 or 256:100,512"
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise _fail("scales", f"expected auto, none, ladder or a list of sizes, got {_show(value)}. {hint}")
    out: list[int | str] = []
    for item in items:
        size, sep, steps = str(item).partition(":")
        size = _number("scales", size.strip(), int, MIN_SIZE, MAX_SIZE)
        if out and size <= stage_of(out[-1])[0]:
            raise _fail("scales", f"sizes must increase: {item} after {out[-1]}. {hint}")
        out.append(f"{size}:{_number('scales', steps.strip(), int, 1, 10**7)}" if sep else size)
    return out


def stage_of(entry: int | str) -> tuple[int, int | None]:
    """A ``scales`` entry as (size, steps or None)."""
    size, _, steps = str(entry).partition(":")
    return int(size), int(steps) if steps else None


def _path_or_none(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(name, f"expected a file path, got {_show(value)}")
    return value


def _blend(value: Any) -> list[float] | None:
    weights = _numbers("style_blend", value)
    if weights is not None and sum(weights) <= 0:
        raise _fail("style_blend", "the weights are all 0: give at least one positive weight.")
    return weights


def _blowup(value: Any) -> float:
    factor = _number("blowup_factor", value, float, 0.0)
    if 0 < factor <= 1:
        raise _fail("blowup_factor", f"{factor!r} would flag every step that is not a new best: "
                                     "use a factor above 1 (default 10), or 0 to turn the guard off.")
    return factor


def _device(value: Any) -> str:
    device = value.lower() if isinstance(value, str) else value
    if not isinstance(device, str) or not (device in DEVICES or device.startswith("cuda:")):
        raise _fail("device", f"unknown device {_show(device)}.{did_you_mean(str(device)[:100], DEVICES)} "
                              f"Allowed: {', '.join(DEVICES)}, cuda:N")
    return device


def _dlp_spec(value: Any) -> str:
    from .dlp import spec as dlp_spec

    if not isinstance(value, str) or not value:
        raise _fail("dlp_spec", f"expected a spec name ({', '.join(dlp_spec.bundled())}) or a YAML file, got {_show(value)}")
    dlp_spec.load(value)  # a bad spec fails here, before anything runs
    return value


def _dlp_mode(value: Any) -> str:
    from .dlp import spec as dlp_spec

    mode = value.lower() if isinstance(value, str) else value
    if mode not in dlp_spec.MODES:
        hint = did_you_mean(str(mode)[:100], dlp_spec.MODES)
        raise _fail("dlp_mode", f"unknown mode {_show(mode)}.{hint} Allowed: {', '.join(dlp_spec.MODES)}")
    return mode


# Each key's own check and parse, in the order they are reported. A value is checked wherever it comes from
# (YAML, --set, a flag), even when a later source overrides it: a config file with `steps: many` is wrong
# whatever --steps says. Checks between keys are in _validate.
PARSERS: dict[str, Any] = {
    "content": lambda v: _path_or_none("content", v),
    "output": lambda v: _path_or_none("output", v),
    "tensorboard": lambda v: _path_or_none("tensorboard", v),
    "style": lambda v: _paths("style", v),
    "style_blend": _blend,
    "style_scale": lambda v: _number("style_scale", v, float, 0.05, 8.0),
    "tv_weight": lambda v: _number("tv_weight", v, float, 0.0),
    "original_colors": lambda v: _bool("original_colors", v),
    "match_histogram": lambda v: _bool("match_histogram", v),
    "style_palette": lambda v: _bool("style_palette", v),
    "laplacian_weight": lambda v: _number("laplacian_weight", v, float, 0.0),
    "laplacian_pool": lambda v: _number("laplacian_pool", v, int, 1, 64),
    "plateau_tol": lambda v: _number("plateau_tol", v, float, 0.0, 1.0),
    "plateau_window": lambda v: _number("plateau_window", v, int, 1, 10**7),
    "max_memory": lambda v: None if v is None else (parse_bytes(v), str(v).strip())[1],
    "optimizer": lambda v: _choice("optimizer", v, OPTIMIZERS),
    "lr": lambda v: _number("lr", v, float, 1e-9, 1e3),
    "scales": _scales,
    "blowup_factor": _blowup,
    "save_every": lambda v: _number("save_every", v, int, 0),
    "checkpoint_every": lambda v: _number("checkpoint_every", v, int, 0),
    "size": lambda v: None if v is None else _number("size", v, int, MIN_SIZE, MAX_SIZE),
    "steps": lambda v: _number("steps", v, int, 1, 10**7),
    "seed": lambda v: _number("seed", v, int, 0, 2**63 - 1),
    "style_weight": lambda v: _number("style_weight", v, float, 0.0),
    "content_weight": lambda v: _number("content_weight", v, float, 0.0),
    "lbfgs_max_iter": lambda v: _number("lbfgs_max_iter", v, int, 1),
    "lbfgs_history": lambda v: _number("lbfgs_history", v, int, 1),
    "log_every": lambda v: _number("log_every", v, int, 1),
    "exact": lambda v: _bool("exact", v),
    "device": _device,
    "weights": lambda v: _choice_or_path("weights", v, WEIGHTS),
    "init": lambda v: _choice_or_path("init", v, INITS),
    "dlp_spec": _dlp_spec,
    "dlp_mode": _dlp_mode,
    "profile": lambda v: _bool("profile", v),
    "lbfgs_line_search": lambda v: _choice("lbfgs_line_search", v, LINE_SEARCHES),
    "pooling": lambda v: _choice("pooling", v, POOLINGS),
    "normalize": lambda v: _choice("normalize", v, NORMALIZE),
    "recipe": lambda v: _choice("recipe", v, RECIPES),
    "style_layers": lambda v: _layer_weights("style_layers", v),
    "content_layers": lambda v: _layer_weights("content_layers", v),
    "temporal_weight": lambda v: _number("temporal_weight", v, float, 0.0),
    "regions": regions.parse_regions,
    "background_style": lambda v: _path_or_none("background_style", v),
    "seg": lambda v: _path_or_none("seg", v),
    "seg_colors": regions.parse_seg_colors,
    "mask_erode": lambda v: _number("mask_erode", v, int, 0, 64),
    "style_coarse": lambda v: _path_or_none("style_coarse", v),
    "style_fine": lambda v: _path_or_none("style_fine", v),
}
assert set(PARSERS) == set(FIELDS), "every Config field has its check"


UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
         "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_bytes(value: Any, name: str = "max_memory") -> int:
    """``4GB``, ``4 GiB``, ``512MB``, ``1.5g`` or a byte count -> bytes (``GB`` = 10^9, ``GiB`` = 2^30)."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", str(value).lower())
    if isinstance(value, bool) or m is None or m.group(2) not in UNITS or float(m.group(1)) <= 0:
        raise _fail(name, f"expected a memory size such as 4GB, 512MiB or 6e9 (bytes), got {_show(value)}")
    return int(float(m.group(1)) * UNITS[m.group(2)])


def check_layer(values: Mapping[str, Any]) -> None:
    """Check each key of one source (a YAML file, the --set items) on its own, before others override it."""
    for key, value in values.items():
        PARSERS[key](value)


def _validate(raw: dict[str, Any]) -> Config:
    cfg = {key: parse(raw[key]) for key, parse in PARSERS.items()}
    if cfg["style_blend"] is not None:
        n = len(cfg["style"] or [None])
        if len(cfg["style_blend"]) != n:
            raise _fail("style_blend", f"{len(cfg['style_blend'])} weights for {n} style image{'s' * (n > 1)}: "
                                       "give one weight per style image, e.g. --style-blend 0.7,0.3 for two.")
    if cfg["profile"] and cfg["device"] != "dlp-sim":
        raise _fail("profile", f"the device profile needs --device dlp-sim (device is {cfg['device']!r}). "
                               "Add --device dlp-sim or drop --profile.")
    _validate_regions(cfg)
    if not cfg["style_layers"] and not cfg["content_layers"]:
        raise _fail("style_layers", "no style or content layers: name at least one layer, e.g. style_layers: [conv_1]")
    return Config(**cfg)


def _validate_regions(cfg: dict[str, Any]) -> None:
    """The regional keys together (docs/regions.md); the files are read and checked by regions.load."""
    masked = bool(cfg["regions"] or cfg["seg"])
    if (cfg["seg"] is None) != (cfg["seg_colors"] is None):
        raise _fail("seg", "give the map and its colours together: --seg MAP --seg-colors '#ff0000=a.jpg,...'")
    if cfg["background_style"] is not None and not masked:
        raise _fail("background_style", "needs regions (--region MASK=STYLE or --seg): without masks the whole "
                                        "image takes the style; give it as the style instead.")
    if masked and cfg["device"] == "dlp-sim":
        raise _fail("regions", "dlp-sim has no masked (guided) Gram kernel; run regional styles with --device cpu "
                               "or cuda.")
    if masked and cfg["style_blend"] is not None:
        raise _fail("style_blend", "does not apply to regions: each region has its own style (and :WEIGHT).")
    if (cfg["style_coarse"] is None) != (cfg["style_fine"] is None):
        raise _fail("style_coarse", "scale control needs both --style-coarse and --style-fine.")
    if cfg["style_coarse"] is not None:
        if masked:
            raise _fail("style_coarse", "scale control and regions do not combine yet; use one or the other.")
        if cfg["style_blend"] is not None:
            raise _fail("style_blend", "does not apply to --style-coarse/--style-fine (one image each).")
        if len(cfg["style_layers"]) < 2:
            raise _fail("style_coarse", "scale control splits the style layers into fine and coarse: "
                                        "give at least two style_layers.")


def _check_keys(data: Mapping[str, Any], where: str) -> None:
    for key in data:
        if key not in FIELDS:
            hint = did_you_mean(str(key), FIELDS) or f" Known keys: {', '.join(FIELDS)}."
            raise StylizeError(f"{where}: unknown key '{key}'.{hint}")


def config_path(name: str | Path) -> Path:
    """A config file path, or the name of a bundled one (``gatys``, ``gatys.yaml``, ``configs/gatys.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    root = Path(str(resources.files("stylize.configs")))
    if path.parts in ((path.name,), ("configs", path.name)):  # `gatys` or `configs/gatys.yaml`, from anywhere
        for candidate in (root / path.name, root / f"{path.name}.yaml"):
            if path.name and candidate.is_file():
                return candidate
    names = sorted(p.stem for p in root.glob("*.yaml"))
    raise StylizeError(f"config file not found: {name}. Give a YAML file, or a bundled config: {', '.join(names)}.")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file; every problem becomes one StylizeError line."""
    path = config_path(path)
    try:
        data = safe_yaml(path.read_text(encoding="utf-8"), str(path))
    except RecursionError:
        raise StylizeError(f"{path}: the YAML nests too deeply. Fix the file.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())[:200]  # one line, whatever PyYAML says
        raise StylizeError(f"{path}: invalid YAML{where}: {problem}. Fix the file's syntax.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StylizeError(f"cannot read config file {path}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StylizeError(f"{path}: expected a mapping of key: value at the top level, got {type(data).__name__}")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}  # style-weight == style_weight, as on the CLI
    _check_keys(data, str(path))
    return data


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML (``steps=50``, ``style_layers=[conv_1,conv_3]``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise StylizeError(f"--set {item!r}: expected key=value, e.g. --set steps=100")
        _check_keys({key: None}, "--set")
        try:
            out[key] = safe_yaml(value, f"--set {key}") if value.strip() else None
        except (yaml.YAMLError, RecursionError):
            out[key] = value
    return out


def build_config(
    file: str | Path | None = None,
    sets: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> Config:
    """Merge defaults < ``base`` < YAML file < ``--set`` items < overrides (CLI flags / keyword arguments), then
    validate. ``base`` is a saved config (a checkpoint's, on ``--resume``).

    ``None`` values in ``overrides`` mean "not given" and are skipped.
    """
    if base is not None:
        _check_keys(base, "checkpoint config")
    merged = {**dataclasses.asdict(Config()), **(base or {})}
    explicit: set[str] = set()  # keys the user gave, wherever from: they decide `recipe`
    for layer in (load_yaml(file) if file is not None else {}, parse_sets(sets)):
        check_layer(layer)  # whole, even the keys a later source overrides
        merged.update(layer)
        explicit.update(layer)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_keys(given, "option")
    merged.update(given)
    explicit.update(given)
    recipe = merged["recipe"].lower() if isinstance(merged["recipe"], str) else merged["recipe"]
    if recipe == "untrained":
        merged.update({k: v for k, v in untrained_recipe().items() if k not in explicit})
    elif recipe == "auto" and explicit & set(untrained_recipe()):
        merged["recipe"] = "seed"  # the user chose layers/weights: never swap them for the recipe's
    return _validate(merged)


def untrained_recipe() -> dict[str, Any]:
    """The untrained recipe's keys and values (``configs/untrained.yaml``, less its ``recipe`` key)."""
    bundled = Path(str(resources.files("stylize.configs"))) / "untrained.yaml"  # never a same-named file here
    return {k: v for k, v in load_yaml(bundled).items() if k != "recipe"}


def resolve_recipe(cfg: Config, untrained_fallback: bool) -> Config:
    """Turn ``recipe: auto`` into what a run uses: ``untrained`` (the recipe's values) when ``weights: auto``
    fell back to untrained weights (``untrained_fallback``), else ``seed`` (the values as they are)."""
    if cfg.recipe != "auto":
        return cfg
    if not untrained_fallback:
        return dataclasses.replace(cfg, recipe="seed")
    return _validate({**dataclasses.asdict(cfg), **untrained_recipe(), "recipe": "untrained"})


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, loadable with ``-c``."""
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False, default_flow_style=None)
