"""The seam every way of evaluating plugs into: an :class:`Objective` maps the image to its weighted loss terms,
and its :meth:`~Objective.backward` puts ``d total / d image`` into ``image.grad``.

The optimization loop (:mod:`stylize.optimize`) sees nothing else: not the network, not the device, not how the
losses are computed. One implementation per way we evaluate:

* :class:`PlainObjective`: the seed's ``nn.Sequential`` with its loss modules, differentiated by autograd
  (``exact: true``);
* :class:`FusedObjective`: the same model fused into one autograd op per conv layer (:mod:`stylize.fused`),
  the CPU/CUDA fast path;
* ``DlpObjective`` (:mod:`stylize.dlp.backend`): the seed's graph on the simulated DLP's kernels.

A backend (:mod:`stylize.devices`) chooses and builds the objective of each stage. Loss terms that act on the
image itself (total variation today; a temporal term later) are part of the objective too, and so are a run's
region masks (:mod:`stylize.regions`): the style model's loss modules hold them with their targets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from . import features, fused, losses
from .config import Config
from .losses import ContentLoss, StyleLoss, tv_loss


@dataclass
class Terms:
    """The weighted loss terms of one evaluation (0-d tensors in the autograd graph of the image, or 0.0)."""

    content: torch.Tensor | float
    style: torch.Tensor | float
    tv: torch.Tensor | float = 0.0
    temporal: torch.Tensor | float = 0.0  # video: held to the warped previous frame (losses.temporal_loss)
    total: torch.Tensor | float = field(init=False)

    def __post_init__(self) -> None:
        # the seed's order: content + style, then the extra terms
        self.total = self.content + self.style + self.tv + self.temporal


@dataclass(frozen=True)
class LossWeights:
    style: float
    content: float
    tv: float = 0.0
    temporal: float = 0.0

    @classmethod
    def of(cls, cfg: Config) -> "LossWeights":
        return cls(cfg.style_weight, cfg.content_weight, cfg.tv_weight, cfg.temporal_weight)


class Objective(ABC):
    """image -> weighted loss terms; then, on request, their gradient with respect to the image."""

    plain: nn.Module | None = None  # the seed-form graph, for display (TensorBoard); None where there is none
    # Video (stylize.video): (warped previous output, consistency mask) for the temporal term; None: no term.
    temporal_target: tuple[torch.Tensor, torch.Tensor] | None = None

    @abstractmethod
    def evaluate(self, image: torch.Tensor) -> Terms:
        """The weighted loss terms of ``image`` (a leaf that requires grad, already in [0, 1])."""

    def backward(self, terms: Terms) -> None:
        """Accumulate ``d terms.total / d image`` into ``image.grad`` (autograd, for graph objectives)."""
        terms.total.backward()


class GraphObjective(Objective):
    """A style model: an ``nn.Sequential`` whose loss modules record their losses as the image runs through it.

    Args:
        model: what runs (the seed's graph, its fused form, or the graph on a device's kernels).
        content_losses, style_losses: the loss modules in ``model``, in network order.
        weights: ``content_weight``, ``style_weight``, ``tv_weight``.
        plain: the seed-form graph, for display.
    """

    def __init__(self, model: nn.Module, content_losses: Sequence[ContentLoss], style_losses: Sequence[StyleLoss],
                 weights: LossWeights, plain: nn.Module | None = None):
        self.model, self.content_losses, self.style_losses, self.weights = model, content_losses, style_losses, weights
        self.plain = plain if plain is not None else model
        model.requires_grad_(False)  # only the image is optimized: no weight gradients

    def evaluate(self, image: torch.Tensor) -> Terms:
        self.model(image)
        w = self.weights
        style = sum(sl.loss for sl in self.style_losses) * w.style
        content = sum(cl.loss for cl in self.content_losses) * w.content
        tv = tv_loss(image) * w.tv if w.tv else 0.0
        held = self.temporal_target
        temporal = losses.temporal_loss(image, *held) * w.temporal if held is not None and w.temporal else 0.0
        return Terms(content, style, tv, temporal)


def style_model(net: nn.Module, content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: Config,
                targets: bool = True, style_loss: type[StyleLoss] = StyleLoss, regions=None):
    """The seed's style model of ``cfg``'s layers over ``net`` (:func:`features.build_style_model`); ``regions``
    (a stage's :class:`~stylize.regions.StageRegions`) makes its style losses guided Gram losses, one per region;
    ``style_coarse``/``style_fine`` split the style taps between the two style images (``styles`` is then
    [coarse, fine])."""
    return features.build_style_model(net, content, styles, cfg.content_layers, cfg.style_layers, cfg.style_blend,
                                      targets=targets, style_loss=style_loss, laplacian_weight=cfg.laplacian_weight,
                                      laplacian_pool=cfg.laplacian_pool, regions=regions,
                                      scale_split=cfg.style_coarse is not None)


def normalized(cfg: Config, content_losses, style_losses) -> None:
    """``normalize: targets``: each loss module's weight divided by its target's scale, once, here at setup."""
    if cfg.normalize == "targets":
        losses.normalize_by_targets([*content_losses, *style_losses])


class PlainObjective(GraphObjective):
    """The seed's graph as built, differentiated by autograd (``exact: true``)."""

    @classmethod
    def build(cls, net: nn.Module, content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: Config,
              regions=None) -> "PlainObjective":
        model, content_losses, style_losses = style_model(net, content, styles, cfg, regions=regions)
        normalized(cfg, content_losses, style_losses)
        return cls(model, content_losses, style_losses, LossWeights.of(cfg))


class FusedObjective(GraphObjective):
    """The fast path: the seed's graph fused into one autograd op per conv layer (:func:`fused.fuse`); the
    targets are computed through the fused kernels only, so the images run once."""

    @classmethod
    def build(cls, net: nn.Module, content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: Config,
              regions=None) -> "FusedObjective":
        plain, content_losses, style_losses = style_model(net, content, styles, cfg, targets=False, regions=regions)
        model = fused.fuse(plain, content, styles)
        normalized(cfg, content_losses, style_losses)
        return cls(model, content_losses, style_losses, LossWeights.of(cfg), plain=plain)
