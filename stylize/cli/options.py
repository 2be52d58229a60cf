"""The options every stylizing command shares: ``-c/--config``, ``--set`` and one option per :class:`Config` key
that a user sets per run (``--size``, ``--steps``, ``--weights``, the artist controls, ...).

``run``, ``batch`` and ``video`` take them through :func:`config_options`, so each option has one name, one help
text and one default (read from :class:`Config`) everywhere. A new per-run config key gets its flag here, once.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from ..config import FIELDS, Config, build_config

_DEFAULTS = Config()
_DEFAULT_TEXT = {"size": "512 on CUDA, 128 otherwise", "output": "outputs/<content>__<style>.png"}


def help_text(text: str, key: str) -> str:
    """Help text with the default read from Config (the single source of defaults)."""
    value = _DEFAULT_TEXT.get(key, getattr(_DEFAULTS, key))
    shown = f"{value:g}" if isinstance(value, float) else value
    return rf"{text} \[default: {shown}]"


def config_flags(params: dict) -> dict:
    """A command's options that are :class:`Config` fields, by field name (None: not given; paths as text)."""
    named = {"weights_": "weights"}  # parameters renamed where the name is a module here
    text = lambda v: ([str(x) for x in v] or None) if isinstance(v, (list, tuple)) else str(v) if isinstance(v, Path) else v  # noqa: E731
    return {named.get(k, k): text(v) for k, v in params.items() if named.get(k, k) in FIELDS}


def _key(name: str, kind: type, text: str, *decls: str) -> inspect.Parameter:
    """The option of config key ``name`` (``--name-with-dashes``), its default shown from Config."""
    return _option(name, kind, help_text(text, name.rstrip("_")), *decls)


def _option(name: str, kind: type, text: str, *decls: str) -> inspect.Parameter:
    option = typer.Option(*decls, help=text, show_default=False)
    parameter = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                  annotation=Annotated[Optional[kind], option])
    _MADE[name] = (kind, decls)
    return parameter


_MADE: dict[str, tuple[type, tuple[str, ...]]] = {}  # how each option was made, for a command's own help text


#: In the order ``--help`` lists them.
OPTIONS = [
    _option("config", str, "YAML config file (or a bundled name: default, gatys, untrained).", "--config", "-c"),
    _key("size", int, "Shorter edge in px."),
    _key("steps", int, "Closure evaluations at the final size (above 768 px, scales auto spreads them over a ladder)."),
    _key("device", str, "auto | cpu | cuda | cuda:N | dlp-sim."),
    _key("weights_", str, "auto | imagenet | untrained | PATH to a VGG19 state_dict.", "--weights"),
    _key("init", str, "noise | content | gray | PATH to an image."),
    _key("seed", int, "Seed of the noise init."),
    _key("style_weight", float, "Style loss weight."),
    _key("content_weight", float, "Content loss weight."),
    _option("style_blend", str, r"Weights of several style images, e.g. 0.7,0.3 (normalized) \[default: equal]"),
    _key("style_scale", float, "Style image size relative to the content's."),
    _key("tv_weight", float, "Total-variation loss weight (smoothness)."),
    _option("original_colors", bool, "Keep the content's colours (luminance-only transfer, YCbCr).", "--original-colors"),
    _option("match_histogram", bool, "Match the style's colour histogram to the content's before the run.",
            "--match-histogram"),
    _key("optimizer", str, "lbfgs | adam."),
    _key("lr", float, "Adam's learning rate."),
    _key("pooling", str, "max | avg: the network's pooling layers."),
    _key("scales", str, "Coarse to fine: auto | none | ladder | sizes, e.g. 256,512 or 256:100,512."),
    _key("save_every", int, "Write <stem>.stepNNNN.png every N steps (0: never)."),
    _key("checkpoint_every", int, "Write <stem>.ckpt every N steps, for --resume (0: never)."),
    _option("max_memory", str, "Memory bound, e.g. 4GB or 512MiB: whole-image or tiled, the tile and the LBFGS history "
            "are planned to fit it (`stylize model --size N` shows the plan) "
            r"\[default: available memory less a margin]"),
    _key("dlp_spec", str, "dlp-sim device spec: textbook | mlu270 | PATH to a spec YAML."),
    _key("dlp_mode", str, "dlp-sim numerics: fp32 | fp16 | int8."),
    _option("profile", bool, "dlp-sim: print the per-op device profile and write <stem>.dlp-profile.json.", "--profile"),
    _option("regions", list[str], "Regional style: MASK=STYLE[:WEIGHT] (repeatable), a grayscale mask over the content; "
            "STYLE@STYLE_MAP takes the style from the map's region of STYLE. The STYLE arguments may then be omitted "
            "(docs/regions.md).", "--region"),
    _option("background_style", Path, r"With --region/--seg: the style of pixels no mask covers \[default: content only]"),
    _option("seg", Path, "A colour-coded map of the content (with --seg-colors)."),
    _option("seg_colors", str, "'#ff0000=a.jpg,#0000ff=b.jpg': the style of each colour of --seg (STYLE@STYLE_MAP: a "
            "style map coded alike)."),
    _key("mask_erode", int, "Erode the masks N px at each layer."),
    _option("style_coarse", Path, "Scale control: the style of the coarse (deeper) style layers (with --style-fine)."),
    _option("style_fine", Path, "Scale control: the style of the fine (shallower) style layers (with --style-coarse)."),
    _option("set_", list[str], "Any config key: --set key=value (repeatable).", "--set"),
]
_NAMES = frozenset(p.name for p in OPTIONS)


@dataclass(frozen=True)
class ConfigOptions:
    """What the user gave of the shared options (None where not given)."""

    values: dict[str, Any]

    def build(self, base: dict | None = None, **flags: Any) -> Config:
        """The run's config: bundled defaults < ``base`` (a checkpoint's) < config file < --set < flags.

        ``flags``: a command's own options that are Config keys (``output``, ...)."""
        given = config_flags({**self.values, **flags})
        return build_config(self.values["config"], self.values["set_"] or (), given, base=base)


def config_options(command: Callable | None = None, *, help: dict[str, str] | None = None) -> Callable:
    """Give ``command`` every shared option; it receives them as one ``options: ConfigOptions`` argument.

    Typer reads a command's options from its signature, so the wrapper's signature is the command's own
    parameters (less ``options``) followed by :data:`OPTIONS`. ``help``: this command's own help text of some
    of them, where they mean something else here (``video``'s ``--steps``): ``@config_options(help={...})``.
    """
    if command is None:
        return functools.partial(config_options, help=help)
    shared = [p if p.name not in (help or {}) else _option(p.name, *_MADE[p.name][:1], help[p.name], *_MADE[p.name][1])
              for p in OPTIONS]
    own = [p for name, p in inspect.signature(command, eval_str=True).parameters.items() if name != "options"]
    clash = _NAMES & {p.name for p in own}
    assert not clash, f"{command.__name__} redefines shared options {sorted(clash)}"

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        shared = {name: kwargs.pop(name) for name in _NAMES}
        return command(**kwargs, options=ConfigOptions(shared))

    wrapper.__signature__ = inspect.Signature([*own, *shared])
    wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *shared]}
    return wrapper
