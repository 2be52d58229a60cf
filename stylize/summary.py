"""``stylize model``: the style model as ``run`` builds it, as a table (torchsummary-like).

One row per module of the built model: ``Normalization``, each VGG19 layer up to the cut (both names), and
each ``ContentLoss``/``StyleLoss`` in its place, with the output shape at the run's image size, parameters
and forward FLOPs; then where the network is cut, and totals.

Shapes and channel counts are read from the modules themselves, not from ``features.LAYERS``: the network is
loaded with ``weights.load_features`` (so a weights file is checked as ``run`` checks it) and the style model
is built and run on the ``meta`` device, which gives every shape without computing anything.

FLOPs are multiply-adds x 2, counted as ``stylize bench`` counts them (:func:`conv_flops`, :func:`gram_flops`
are shared with ``bench.flops_per_eval``): a conv's forward is ``2*Cin*kh*kw*Cout*H*W``, its backward (the
input gradient only; the weights are frozen) the same again; a Gram matrix ``2*C^2*H*W`` forward and the same
backward. Elementwise work (normalization, ReLU, pooling, MSE) is not counted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import features, images, memory, plan as plan_, schedule
from . import weights as weights_
from .config import Config, resolve_recipe
from .errors import StylizeError
from .losses import ContentLoss, StyleLoss
from .demo import demo_pair

FLOAT_BYTES = 4  # float32 everywhere in a run


def conv_flops(in_channels: int, out_channels: int, height: int, width: int, kernel: int = 3, groups: int = 1) -> int:
    """Forward FLOPs of a conv with an ``height`` x ``width`` output: ``2 * Cin/groups * k*k * Cout * H*W``
    (bias adds not counted). Its input gradient costs the same."""
    return 2 * (in_channels // groups) * kernel * kernel * out_channels * height * width


def gram_flops(channels: int, height: int, width: int) -> int:
    """Forward FLOPs of the Gram matrix of (C, H*W) features: ``F F^T`` is ``C^2 * H*W`` multiply-adds.
    Its backward (one matmul) costs the same."""
    return 2 * channels**2 * height * width


@dataclass(frozen=True)
class Row:
    """One module of the built style model."""

    name: str  # the module's name in the model: normalization, conv_4, relu_4, pool_4, style_loss_4
    paper_name: str  # VGG layers: Gatys et al.'s name (conv2_2); "" for the other rows
    kind: str  # normalization | conv | relu | max_pool | avg_pool | content_loss | style_loss
    shape: tuple[int, ...]  # output (N, C, H, W); loss modules pass their input through
    params: int  # trainable-shape parameters (weights + bias); frozen in a run
    flops: int  # forward, multiply-adds x 2
    backward_flops: int  # as bench counts: the conv's input gradient, the Gram's backward
    weight: float | None = None  # loss rows: the per-layer weight from the config
    observes: str = ""  # loss rows: the layer whose output they read (paper name)
    note: str = ""


@dataclass
class ModelSummary:
    """:func:`model_table`'s answer: the rows and what they add up to."""

    rows: list[Row]
    width: int  # image size the shapes are for
    height: int
    content: str  # whose aspect ratio sets width x height
    weights: str
    recipe: str
    pooling: str
    cut: features.Layer  # the last VGG layer built
    targets_bytes: int  # content targets (features) + style targets (Gram matrices), float32
    run_bytes: int = 0  # the peak `stylize run` is predicted to need at this size (memory.run_bytes; CPU: with torch)
    total_layers: int = len(features.LAYERS)
    notes: list[str] = field(default_factory=list)
    plan: dict[str, Any] | None = None  # the memory plan (stylize/plan.py), None when run would refuse the size
    plan_lines: list[str] = field(default_factory=list)  # ...as `stylize model` prints it

    @property
    def built_layers(self) -> int:
        return self.cut.index + 1

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def forward_flops(self) -> int:
        return sum(r.flops for r in self.rows)

    @property
    def flops_per_eval(self) -> int:
        """Forward + backward of one closure evaluation; equals ``bench.flops_per_eval`` for the same layers."""
        return sum(r.flops + r.backward_flops for r in self.rows)

    @property
    def activation_bytes(self) -> int:
        """The forward outputs of every computing module (float32, batch 1): what autograd keeps for backward,
        roughly. Loss rows pass their input through and add nothing."""
        return sum(FLOAT_BYTES * _numel(r.shape) for r in self.rows if not r.kind.endswith("_loss"))

    def cut_line(self) -> str:
        after = self.total_layers - self.built_layers
        if after == 0:
            return f"cut: none; all {self.total_layers} VGG19 layers are built (the last loss is at {self.cut.paper_name})"
        first, last = features.LAYERS[self.cut.index + 1], features.LAYERS[-1]
        return (f"cut here: layers after {self.cut.paper_name} ({self.cut.name}) are not built "
                f"({after} of {self.total_layers}: {first.paper_name} .. {last.paper_name})")

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": {"width": self.width, "height": self.height, "content": self.content},
            "weights": self.weights, "recipe": self.recipe, "pooling": self.pooling,
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "cut": {"after": self.cut.paper_name, "after_seed_name": self.cut.name, "built_layers": self.built_layers,
                    "total_layers": self.total_layers},
            "totals": {"params": self.params, "forward_flops": self.forward_flops, "flops_per_eval": self.flops_per_eval,
                       "activation_bytes": self.activation_bytes, "targets_bytes": self.targets_bytes,
                       "run_bytes": self.run_bytes},
            "notes": self.notes, "plan": self.plan,
        }


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def default_size(cfg: Config) -> int:
    """``run``'s rule without probing a device: the config's size, else 512 on CUDA, else 128."""
    if cfg.size is not None:
        return cfg.size
    cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    return 512 if cuda else 128


def model_table(cfg: Config, size: int | None = None) -> ModelSummary:
    """The style model ``run`` would build for ``cfg``, as rows.

    As ``run``: ``weights: auto`` is resolved (and with it ``recipe: auto``, which may switch to the untrained
    recipe's layers), the image is ``cfg.content`` (default: the bundled demo) scaled so its shorter edge is
    ``size`` (default :func:`default_size`), and the network is loaded up to the last loss layer with
    ``cfg.pooling``.

    Raises:
        StylizeError: an unreadable image or weights file, or a size too small for the deepest loss layer.
    """
    spec, fallback = weights_.resolve(cfg.weights)
    cfg = resolve_recipe(cfg, untrained_fallback=fallback is not None)
    size = size if size is not None else default_size(cfg)
    content_path = Path(cfg.content) if cfg.content else demo_pair()[0]
    content = images.load_image(content_path)
    width, height = images.shorter_edge_size(content.width, content.height, size)
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    cut_layer = features.LAYERS[cut]
    if min(width, height) < 2**cut_layer.pools_before:
        need = 2**cut_layer.pools_before
        raise StylizeError(f"size {size} is too small: layer {cut_layer.paper_name} ({cut_layer.name}) sits after "
                           f"{cut_layer.pools_before} poolings, so the shorter edge must be at least {need} px. "
                           f"Use --size {max(need, 64)} or more.")
    net, info = weights_.load_features(spec, cut, cfg.pooling)
    rows, targets_bytes = _rows(net, width, height, cfg.content_layers, cfg.style_layers)
    notes = ["FLOPs: multiply-adds x 2; elementwise ops (normalization, ReLU, pooling, MSE) not counted."]
    if cfg.normalize == "targets":
        notes.append("normalize: targets divides each loss weight by mean(target^2) at setup (not shown).")
    device = torch.device("cuda" if cfg.device.startswith("cuda") else "cpu")
    predicted = memory.run_bytes(width, height, cfg, cut, device)
    sized = dataclasses.replace(cfg, size=size)
    try:  # the memory plan run would make here (stylize/plan.py), stage by stage
        made = plan_.make(schedule.plan(sized, content.width, content.height, cut, not cfg.exact), sized, cut, device,
                          (content.width, content.height))
        predicted, plan_lines = made.peak_bytes, [
            f"plan ({'--max-memory ' + cfg.max_memory if cfg.max_memory else 'available memory less a margin'}: "
            f"{made.budget_bytes / 2**30:.2f} GiB): predicted peak {made.peak_bytes / 2**30:.2f} GiB",
            *(f"  stage {k + 1}: {p.describe()}" for k, p in enumerate(made.stages))]
        plan_dict = made.as_dict()
    except StylizeError as e:
        plan_lines, plan_dict = [f"plan: run would refuse this size: {e}"], None
    return ModelSummary(rows, width, height, content_path.name, str(info), cfg.recipe, cfg.pooling, cut_layer,
                        targets_bytes, predicted, notes=notes, plan=plan_dict, plan_lines=plan_lines)


def _rows(net: nn.Sequential, width: int, height: int, content_layers, style_layers) -> tuple[list[Row], int]:
    """Build the style model on the meta device, run it once with forward hooks, and read each module."""
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in net.named_children()}  # before meta
    meta = torch.empty(1, 3, height, width, device="meta")
    model, content_losses, style_losses = features.build_style_model(net.to("meta"), meta, meta, content_layers,
                                                                    style_layers)
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # name -> (input shape, output shape)
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, (tuple(i[0].shape), tuple(o.shape))))
             for name, m in model.named_children()]
    with torch.no_grad():
        model(meta)
    for h in hooks:
        h.remove()

    rows, observed = [], ""
    for name, m in model.named_children():
        (_, c_in, _, _), shape = shapes[name]
        _, c, h, w = shape
        if isinstance(m, features.Normalization):
            rows.append(Row("normalization", "", "normalization", shape, 0, 0, 0, note="ImageNet mean/std"))
        elif isinstance(m, (ContentLoss, StyleLoss)):
            style = isinstance(m, StyleLoss)
            flops = gram_flops(c, h, w) if style else 0
            note = f"Gram {c}x{c}" if style else f"target {c}x{h}x{w}"
            rows.append(Row(name, "", "style_loss" if style else "content_loss", shape, 0, flops, flops,
                            weight=m.weight, observes=observed, note=note))
        else:
            entry = features.layer(name)
            observed = entry.paper_name
            kind, flops, note = entry.kind, 0, ""
            if isinstance(m, nn.Conv2d):
                flops = conv_flops(m.in_channels, m.out_channels, h, w, m.kernel_size[0], m.groups)
                note = f"{m.kernel_size[0]}x{m.kernel_size[1]}, {c_in} -> {m.out_channels}"
            elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                kind = "max_pool" if isinstance(m, nn.MaxPool2d) else "avg_pool"
                note = f"{kind.split('_')[0]} 2x2"
            rows.append(Row(name, entry.paper_name, kind, shape, params[str(entry.index)], flops,
                            flops if kind == "conv" else 0, note=note))
    targets = sum(FLOAT_BYTES * loss.target.numel() for loss in [*content_losses, *style_losses])
    return rows, targets
