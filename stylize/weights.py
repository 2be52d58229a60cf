"""Where VGG19 weights come from: torchvision's ImageNet file (hub cache or download), a local file, or
a deterministic random init."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import features
from .compress import prune, quantize
from .errors import StylizeError
from .outputs import AtomicFiles

# torchvision.models.VGG19_Weights.IMAGENET1K_V1: the file name carries the first 8 hex digits of its sha256.
IMAGENET_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
IMAGENET_FILE = IMAGENET_URL.rsplit("/", 1)[1]
IMAGENET_SHA256_PREFIX = IMAGENET_FILE.split("-")[1].split(".")[0]
UNTRAINED_SEED = 0
DOWNLOAD_TIMEOUT_S = 30


@dataclass
class WeightsInfo:
    """What a run used, for printing and for run.json."""

    kind: str  # "imagenet" | "file" | "untrained" | "pruned" | "pruned-structured" | "int8"
    source: str  # a path, or a description
    warning: str | None = None
    # int8 files: per-conv calibrated scales ({features index: tensors}) for dlp-sim's int8 mode; not in run.json
    qparams: dict | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "qparams"}

    def __str__(self) -> str:
        return f"{self.kind} ({self.source})"


def cache_path() -> Path:
    """Where torchvision keeps (and we look for) the ImageNet VGG19 file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE


def offline() -> bool:
    return os.environ.get("STYLIZE_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def load_features(spec: str, upto: int, pooling: str = "max") -> tuple[nn.Sequential, WeightsInfo]:
    """VGG19 features up to layer ``upto`` with the weights ``spec`` names.

    Args:
        spec: ``auto`` (ImageNet if cached or downloadable, else untrained with a warning), ``imagenet``,
            ``untrained`` or a path to a VGG19 (or features-only) state_dict.
        upto: index of the last layer needed (the network is cut there).
        pooling: ``max`` (VGG19's) or ``avg``; pools have no weights, so this does not change what is loaded.
    """
    net = features.vgg19_features(upto, pooling)
    spec, fallback = resolve(spec)
    if spec == "untrained":
        return features.init_untrained(net, UNTRAINED_SEED), _untrained_info(fallback and fallback_warning(fallback))
    if spec == "imagenet":
        state, info = _load_file(_imagenet_file(), "ImageNet weights"), WeightsInfo("imagenet", str(cache_path()))
    else:
        path = Path(spec)
        if not path.is_file():
            raise StylizeError(f"weights file not found: {spec}. Use auto, imagenet, untrained or a path to a VGG19 state_dict.")
        state, info = _load_file(path, "weights file"), WeightsInfo("file", str(path))
        if "stylize_format" in state:  # a `stylize prune --method l1-structured` or `stylize quantize` artefact
            return _load_compressed(state, upto, pooling, info)
    _load_into(net, state, info.source)
    return net, _note_sparsity(net, info)


PRUNED_MIN_SPARSITY = 0.01  # trained or random conv weights have (almost) no exact zeros; pruned ones many


def _load_compressed(state: dict, upto: int, pooling: str, info: WeightsInfo) -> tuple[nn.Sequential, WeightsInfo]:
    """Build the net an artefact of ``stylize.compress`` describes: channel-pruned, or int8 (dequantized)."""
    fmt = state["stylize_format"]
    if fmt == prune.STRUCTURED_FORMAT:
        net = prune.build_structured(state, upto, pooling, info.source)
        _load_into(net, state, info.source)
        channels = [m.out_channels for m in net if isinstance(m, nn.Conv2d)]
        return net, WeightsInfo("pruned-structured", f"{info.source}, conv channels {channels}")
    if fmt == quantize.FORMAT:
        q = quantize.qparams(state, info.source)
        net = quantize.dequantized_features(q, upto, pooling, info.source)
        return net, WeightsInfo("int8", f"{info.source}, int8 weights dequantized to float", qparams=q)
    raise StylizeError(f"{info.source} has stylize_format {fmt!r}, which this version does not know. "
                       f"Known: {prune.STRUCTURED_FORMAT}, {quantize.FORMAT}.")


def _note_sparsity(net: nn.Sequential, info: WeightsInfo) -> WeightsInfo:
    """A file with many exactly-zero conv weights is an unstructured-pruned one: say so."""
    convs = [m.weight for m in net if isinstance(m, nn.Conv2d)]
    total = sum(w.numel() for w in convs)
    zeros = sum(int((w == 0).sum()) for w in convs)
    if total and zeros / total >= PRUNED_MIN_SPARSITY:
        return WeightsInfo("pruned", f"{info.source}, {zeros / total:.1%} of conv weights zero", info.warning)
    return info


def resolve(spec: str) -> tuple[str, str | None]:
    """What ``spec`` means now: ``auto`` becomes ``imagenet`` if the ImageNet file is cached or downloads, else
    ``untrained`` and the reason (the second item, None unless ``auto`` fell back). Other specs are returned as is."""
    if spec != "auto":
        return spec, None
    try:
        _imagenet_file()
    except StylizeError as e:
        return "untrained", str(e).split(". ")[0]
    return "imagenet", None


def fallback_warning(reason: str, recipe: str | None = None) -> str:
    """The loud warning when ``auto`` falls back to untrained weights; it says which recipe the run uses."""
    if recipe == "untrained":
        outcome = ("with the untrained recipe (configs/untrained.yaml: per-layer loss normalization, shallow layers, "
                   "avg pooling, the content in the style's palette as init, a plateau stop). Expect a rough stylization, far from what ImageNet weights give.")
    else:
        outcome = ("Results will look like coloured noise rather than a stylization with these layers and weights; "
                   "the untrained recipe (-c untrained) does much better.")
    return (f"ImageNet VGG19 weights unavailable ({reason}); using UNTRAINED random weights {outcome} "
            "Fix: `stylize weights import vgg19-dcbb9e9d.pth` (see `stylize weights info`).")


def _untrained_info(warning: str | None = None) -> WeightsInfo:
    return WeightsInfo("untrained", f"seeded random init, seed {UNTRAINED_SEED}", warning)


def _imagenet_file() -> Path:
    path = cache_path()
    if path.is_file():
        return path
    if offline():
        raise StylizeError(f"ImageNet weights are not in {path.parent} and STYLIZE_OFFLINE is set. "
                           "Import them with `stylize weights import FILE`, or unset STYLIZE_OFFLINE to download")
    path.parent.mkdir(parents=True, exist_ok=True)  # hub writes <file>.<uuid>.partial beside it
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # hub's urlopen has no timeout of its own
    try:
        torch.hub.download_url_to_file(IMAGENET_URL, str(path), hash_prefix=IMAGENET_SHA256_PREFIX, progress=True)
    except Exception as e:  # network errors come in many types (URLError, socket.timeout, HTTP errors...)
        raise StylizeError(f"could not download {IMAGENET_URL}: {e}. On a machine without internet, copy "
                           f"{IMAGENET_FILE} here and run `stylize weights import FILE`") from None
    finally:
        socket.setdefaulttimeout(old)
    return path


def safe_load(path: Path):
    """``torch.load(weights_only=True)`` (no code in a pickle ever runs), without torch's warnings: a plain
    pickle or an old protocol makes torch print a two-line UserWarning before our one-line error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


_KEPT: dict[tuple, dict] = {}  # a batch worker's weights file, by (path, size, mtime): read once, serves many jobs
_KEEP = False


def keep_files_loaded() -> None:
    """Keep the last weights file read in memory for the next run in this process (a batch worker's jobs)."""
    global _KEEP
    _KEEP = True


def _load_file(path: Path, what: str) -> dict[str, torch.Tensor]:
    if _KEEP:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, what)
        if key not in _KEPT:
            _KEPT.clear()
            _KEPT[key] = _read_file(path, what)
        return _KEPT[key]  # runs copy the tensors into their own network (_load_into): never changed here
    return _read_file(path, what)


def _read_file(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        state = safe_load(path)
    except Exception:  # torch.load raises many types, with cryptic messages, for non-checkpoints
        raise StylizeError(f"cannot read {what} {path}: not a PyTorch state_dict. "
                           "Give a file saved with torch.save(model.state_dict()).") from None
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise StylizeError(f"{path} is not a VGG19 state_dict (it holds a {type(state).__name__}).")
    return state


def _load_into(net: nn.Sequential, state: dict, source: str) -> None:
    """Copy VGG19 weights (``features.N.weight`` or ``N.weight`` keys) into ``net``, checking every shape
    (``net`` may be a channel-pruned VGG19: its own shapes are the reference)."""
    stripped = {k.removeprefix("features."): v for k, v in state.items() if isinstance(k, str)}
    known = {f"{i}.{p}" for i in features.conv_shapes() for p in ("weight", "bias")}
    strays = [k for k in state if isinstance(k, str) and k.startswith("features.") and k.removeprefix("features.") not in known]
    if strays:  # other prefixes (torchvision's classifier.*) are fine; a features entry VGG19 lacks is not
        raise StylizeError(f"{source} is not a VGG19 state_dict: {str(strays[0])[:60]!r} is no VGG19 features "
                           "parameter. Give torchvision's vgg19 weights or a features-only state_dict.")
    for name, param in net.state_dict().items():
        value = stripped.get(name)
        if not isinstance(value, torch.Tensor):
            raise StylizeError(f"{source} is not a VGG19 state_dict: it has no tensor 'features.{name}'. "
                               "Give torchvision's vgg19 weights or a features-only state_dict.")
        if value.shape != param.shape:
            raise StylizeError(f"{source} is not a VGG19 state_dict: 'features.{name}' has shape {tuple(value.shape)}, "
                               f"VGG19 needs {tuple(param.shape)}.")
        if not value.is_floating_point() or value.layout != torch.strided:
            raise StylizeError(f"{source} is not a VGG19 state_dict: 'features.{name}' is {value.dtype}; weights are "
                               "floating point. Give the file as torch.save(model.state_dict()) wrote it.")
        if not bool(torch.isfinite(value).all()):
            raise StylizeError(f"{source}: 'features.{name}' holds NaN or inf; those weights cannot stylize. "
                               "Give a file of finite weights.")
    net.load_state_dict({k: stripped[k].float() for k in net.state_dict()})


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_file(path: str | Path) -> Path:
    """Check a downloaded ``vgg19-dcbb9e9d.pth`` against torchvision's hash and place it in the hub cache."""
    path = Path(path)
    if not path.is_file():
        raise StylizeError(f"file not found: {path}. Give the path of a downloaded {IMAGENET_FILE}.")
    digest = sha256(path)
    if not digest.startswith(IMAGENET_SHA256_PREFIX):
        raise StylizeError(f"{path} is not torchvision's VGG19 ImageNet file: its sha256 starts {digest[:8]}, "
                           f"expected {IMAGENET_SHA256_PREFIX}. Download {IMAGENET_URL} again.")
    dest = cache_path()
    with AtomicFiles() as files:
        shutil.copyfile(path, files.stage(dest))
    return dest


def info() -> dict:
    """What is available, and what ``--weights auto`` would use now."""
    path = cache_path()
    cached = path.is_file()
    auto = "imagenet (cached)" if cached else ("untrained (STYLIZE_OFFLINE is set)" if offline() else "imagenet download, untrained if that fails")
    return {"cache_file": str(path), "cached": cached, "offline": offline(), "download_url": IMAGENET_URL, "auto_would_use": auto}
