"""Pruning VGG19's convs: the seed's ``torch.nn.utils.prune`` made permanent, and channel pruning that shrinks the net.

* ``l1-unstructured`` / ``random-unstructured``: the seed's ``prune.global_unstructured`` over the conv weights
  the style model uses (one global threshold over all of them, so layers end up with different sparsities),
  made permanent with ``prune.remove``. The result is a plain state_dict of the same shapes with zeros in it:
  smaller only once compressed or run on sparse kernels, which stylize does not have (dense convs run as fast).
* ``l1-structured``: in each chosen conv, the ``amount`` fraction of output channels with the smallest L1 norm
  (``prune.LnStructured(n=1, dim=0)``, Li et al. 2017 "Pruning Filters for Efficient ConvNets") is removed
  outright, together with the matching input channels of the next conv: a physically smaller, faster net whose
  file records its channel counts (``channels``) so ``weights.load_features`` can rebuild it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.utils.prune as tprune
from torch import nn

from .. import features
from ..errors import StylizeError, did_you_mean

METHODS = ("l1-unstructured", "random-unstructured", "l1-structured")
STRUCTURED_FORMAT = "pruned-structured"  # the value of ``stylize_format`` in a structured file


@dataclass
class LayerRow:
    """One conv of the table ``stylize prune`` prints."""

    name: str  # conv_4 (conv2_2)
    shape_before: tuple[int, ...]
    shape_after: tuple[int, ...]
    zeros: int  # weight entries that are zero after pruning
    params_before: int  # weight + bias entries
    params_after: int
    pruned: bool  # whether this conv was one of the targets

    @property
    def sparsity(self) -> float:
        return self.zeros / max(1, _numel(self.shape_after))

    def as_dict(self) -> dict:
        return {"layer": self.name, "shape_before": list(self.shape_before), "shape_after": list(self.shape_after),
                "sparsity": self.sparsity, "params_before": self.params_before, "params_after": self.params_after,
                "pruned": self.pruned}


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def conv_indices(net: nn.Sequential) -> list[int]:
    """Positions of the convs in ``net`` (indices into VGG19's ``features``)."""
    return [i for i, m in enumerate(net) if isinstance(m, nn.Conv2d)]


def target_indices(net: nn.Sequential, layers: Sequence[str] | None) -> list[int]:
    """The convs to prune: those named in ``layers`` (either naming scheme), or every conv of ``net``."""
    convs = conv_indices(net)
    if not layers:
        return convs
    chosen = []
    for name in layers:
        entry = features.layer(name)
        if entry.kind != "conv":
            raise StylizeError(f"--layers: {name} is a {entry.kind} layer; only convs have weights to prune. "
                               "Give conv names (conv_1..conv_16 or conv1_1..conv5_4).")
        if entry.index not in convs:
            raise StylizeError(f"--layers: {name} lies beyond the network's cut (last conv: "
                               f"{features.LAYERS[convs[-1]].name}). Choose a config (-c) whose layers reach it.")
        chosen.append(entry.index)
    return sorted(set(chosen))


def check_method(method: str) -> str:
    if method not in METHODS:
        raise StylizeError(f"unknown pruning method {method!r}.{did_you_mean(method, METHODS)} "
                           f"Use one of {', '.join(METHODS)}.")
    return method


def check_amount(amount: float) -> float:
    if not 0.0 < amount < 1.0:
        raise StylizeError(f"--amount {amount:g} is outside (0, 1): it is the fraction of weights (or channels) "
                           "to remove, e.g. 0.3.")
    return amount


def prune_unstructured(net: nn.Sequential, targets: Sequence[int], amount: float, method: str = "l1-unstructured",
                       seed: int = 0) -> None:
    """The seed's global pruning over ``net[i].weight`` for ``i`` in ``targets``, made permanent, in place.

    ``prune.global_unstructured`` removes ``round(amount * total)`` weights over all targets together (the
    smallest magnitudes for L1, a seeded random choice otherwise); ``prune.remove`` then bakes the mask into
    the weight, so the module is a plain Conv2d again.
    """
    pairs = [(net[i], "weight") for i in targets]
    pruning_method = tprune.L1Unstructured if method == "l1-unstructured" else tprune.RandomUnstructured
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tprune.global_unstructured(pairs, pruning_method=pruning_method, amount=amount)
    for module, name in pairs:
        tprune.remove(module, name)


def channels_to_keep(weight: torch.Tensor, amount: float) -> torch.Tensor:
    """Output channels of a conv that survive L1 filter pruning of ``amount``: sorted indices (the mask
    ``prune.LnStructured(amount, n=1, dim=0)`` computes, read back as channel indices)."""
    mask = tprune.LnStructured(amount, n=1, dim=0).compute_mask(weight, torch.ones_like(weight))
    return mask.flatten(1).any(dim=1).nonzero().flatten()


def prune_structured(net: nn.Sequential, targets: Sequence[int], amount: float) -> nn.Sequential:
    """A new, smaller net: each target conv loses ``amount`` of its output channels (smallest L1 filters),
    and the conv after it the matching input channels. ReLUs and pools pass channels through unchanged."""
    out = nn.Sequential()
    kept_in: torch.Tensor | None = None  # channels of the previous conv that survive (None = all)
    for i, module in enumerate(net):
        if not isinstance(module, nn.Conv2d):
            out.add_module(str(i), module)
            continue
        weight, bias = module.weight.detach(), module.bias.detach()
        if kept_in is not None:
            weight = weight[:, kept_in]
        keep = channels_to_keep(weight, amount) if i in targets else torch.arange(weight.shape[0])
        conv = nn.Conv2d(weight.shape[1], len(keep), kernel_size=3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(weight[keep])
            conv.bias.copy_(bias[keep])
        out.add_module(str(i), conv)
        kept_in = keep
    return out


def table(before: nn.Sequential, after: nn.Sequential, targets: Sequence[int]) -> list[LayerRow]:
    """Per conv: shapes, zeros and parameter counts before and after."""
    rows = []
    for i in conv_indices(before):
        b, a = before[i], after[i]
        entry = features.LAYERS[i]
        rows.append(LayerRow(f"{entry.name} ({entry.paper_name})", tuple(b.weight.shape), tuple(a.weight.shape),
                             int((a.weight == 0).sum()), b.weight.numel() + b.bias.numel(),
                             a.weight.numel() + a.bias.numel(), i in targets))
    return rows


def totals(rows: Sequence[LayerRow]) -> dict:
    """Over all convs: parameters before/after, zero weights, and the global sparsity of the pruned convs."""
    pruned = [r for r in rows if r.pruned]
    return {"params_before": sum(r.params_before for r in rows), "params_after": sum(r.params_after for r in rows),
            "zeros": sum(r.zeros for r in rows),
            "sparsity_of_pruned_convs": sum(r.zeros for r in pruned) / max(1, sum(_numel(r.shape_after) for r in pruned)),
            "channel_fraction_removed": 1 - sum(r.shape_after[0] for r in pruned) / max(1, sum(r.shape_before[0] for r in pruned))}


def state_dict(net: nn.Sequential, structured: bool) -> dict:
    """What ``stylize prune`` saves: a features-only VGG19 state_dict (``features.N.weight``...), plus for
    structured pruning the format tag and the per-conv output channels, so the architecture can be rebuilt."""
    state = {f"features.{k}": v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    if structured:
        state["stylize_format"] = STRUCTURED_FORMAT
        state["channels"] = [net[i].out_channels for i in conv_indices(net)]
    return state


def _brief(values: Sequence) -> str:
    text = str(list(values[:8])) if len(values) <= 8 else f"{list(values[:8])[:-1]} ... ({len(values)} entries)"
    return text[:120]


def build_structured(state: dict, upto: int, pooling: str, source: str) -> nn.Sequential:
    """The net a structured file describes, cut at ``upto``, with its weights loaded."""
    channels = state.get("channels")
    widths = [e.channels for e in features.LAYERS if e.kind == "conv"]
    if not isinstance(channels, (list, tuple)) or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0
                                                          for c in channels):
        raise StylizeError(f"{source} says it is a channel-pruned VGG19 but has no valid 'channels' list. "
                           "Prune again with `stylize prune --method l1-structured`.")
    # Checked against VGG19's own widths before anything is allocated: a crafted [10**6] * 16 asked for 36 TB.
    if len(channels) > len(widths) or any(c > w for c, w in zip(channels, widths)):
        raise StylizeError(f"{source}: its 'channels' {_brief(channels)} are not a pruned VGG19's: at most "
                           f"{len(widths)} convs of at most {widths} channels. Prune again with `stylize prune "
                           "--method l1-structured`.")
    convs_needed = sum(1 for e in features.LAYERS[: upto + 1] if e.kind == "conv")
    if convs_needed > len(channels):
        raise StylizeError(f"{source} holds {len(channels)} convs, this run's layers need {convs_needed} "
                           f"(up to {features.LAYERS[upto].name}). Prune with a config (-c) whose layers reach them.")
    return features.vgg19_features(upto, pooling, channels)
