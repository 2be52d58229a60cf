"""Exact tiled evaluation (Galerne et al. 2022, "Scaling Painting Style Transfer"): the whole image's loss and
image gradient, with the network run one tile at a time, so memory is bounded by a tile, not by the image.

The style losses are functions of Gram matrices, sums over all pixels; the content losses are sums too. So:

* **pass 1** (:meth:`TiledObjective.evaluate`, no autograd) runs each tile with a *halo* around it that covers
  the receptive field of the deepest tapped layer, and aligned to the pooling grid: the features of the tile's
  interior are then the whole image's features, bit for bit up to the convolution's summation order. It sums
  each style layer's ``F F^T`` over the tiles' interiors and each content layer's squared error; the losses are
  formed from these sums exactly as the whole image forms them, and their gradients with respect to each Gram
  matrix (``dL/dG``) are kept;
* **pass 2** (:meth:`TiledObjective.backward`) runs each tile again, with autograd, and back-propagates from its
  interior features the whole image's upstream gradient (``dL/dF = (dL/dG + dL/dG^T) F / (C N)`` for a style
  layer, ``2 w (F - T) / numel`` for a content layer). Each tile's input gradient, halo included, is *added*
  into the image's: a pixel near a tile border feeds features of the neighbouring tile's interior too.

Features of each interior are counted once (the interiors partition every feature map), so the sums and the
gradient are the whole image's and there are no seams. The normalization is per pixel, so each tile normalizes
its own region and pass 2's gradients are the image's directly (no image-sized normalized copy and its gradient
are held: at 4096x3072 px each is 0.14 GiB). The image-level terms (a Laplacian content term, TV) run on the
whole image with autograd.

The targets are computed the same way (the content's features assembled from its tiles, each style image's Gram
summed over its tiles), through the same kernels as the evaluation, so the content image has content loss 0.
``fused``: the convolutions are the fast path's kernels (:func:`stylize.fused.conv3x3`, NNPACK on the CPU) and
the Gram products :func:`stylize.fused.gram_product`; else the seed's modules as built.

Regional styles (:class:`~stylize.losses.MaskedStyleLoss`) tile the same way: a guided Gram
``(F m_r)(F m_r)^T / (C sum m_r^2)`` is a sum over pixels too. Each region's mask is carried to the layer's size
once, on the whole image (:func:`~stylize.losses.mask_at`, erosion included), and each tile takes its interior's
crop; pass 2's upstream gradient is ``sum_r (dL/dG_r + dL/dG_r^T) F m_r^2 / (C sum m_r^2)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import features, fused
from .config import Config
from .losses import ContentLoss, MaskedStyleLoss, StyleLoss, blended_gram, mask_at, tv_loss
from .objective import LossWeights, Objective, Terms, normalized, style_model


def halo(cut: int) -> int:
    """Pixels of context each side of a tile so that features up to layer ``cut`` of its interior are exact.

    Each 3x3 conv at pooling level ``p`` widens the receptive field by ``2**p`` input pixels each side, each 2x2
    pool at level ``p`` by at most ``2**p``; the sum is rounded up to the pooling grid of the deepest layer
    (``2**pools``), so tile origins stay on that grid and every pooling window of a tile is one of the image's.
    """
    r = sum(2**e.pools_before for e in features.LAYERS[: cut + 1] if e.kind == "conv")
    r += sum(2 ** (e.pools_before - 1) for e in features.LAYERS[: cut + 1] if e.kind == "pool")
    grid = grid_of(cut)
    return -(-r // grid) * grid


def grid_of(cut: int) -> int:
    """The pooling grid of layer ``cut``: tile borders sit on multiples of it."""
    return 2 ** features.LAYERS[cut].pools_before


@dataclass(frozen=True)
class Tile:
    """One tile: its interior ``[y0, y1) x [x0, x1)`` and the region it runs on, interior plus halo (image px)."""

    y0: int
    y1: int
    x0: int
    x1: int
    ty0: int
    ty1: int
    tx0: int
    tx1: int


def tiles(height: int, width: int, tile: int, margin: int, grid: int) -> list[Tile]:
    """The tiles of a ``height`` x ``width`` image: interiors of ``tile`` px (a multiple of ``grid``; the last row and
    column take the rest), each run with ``margin`` px of halo, clipped at the image's border."""
    if tile % grid or margin % grid:
        raise ValueError(f"tile {tile} and halo {margin} must be multiples of the pooling grid {grid}")

    def spans(n: int) -> list[tuple[int, int]]:
        cuts = list(range(0, n, tile))[1:]
        if cuts and n - cuts[-1] < grid:  # a sliver at the end: into the previous tile
            cuts.pop()
        bounds = [0, *cuts, n]
        return list(zip(bounds, bounds[1:]))

    return [Tile(y0, y1, x0, x1, max(0, y0 - margin), min(height, y1 + margin), max(0, x0 - margin), min(width, x1 + margin))
            for y0, y1 in spans(height) for x0, x1 in spans(width)]


class _Network:
    """The style model from its first conv on, run on one tile, returning each tap's interior features."""

    def __init__(self, model: nn.Sequential, fast: bool):
        items = list(model.children())
        first = next(i for i, m in enumerate(items) if isinstance(m, nn.Conv2d))
        self.prefix = nn.Sequential(*items[:first])  # normalization, image-level taps (run on the whole image)
        # The modules before the first conv but the taps (the normalization): per pixel, so run on each tile.
        self.pixelwise = [m for m in self.prefix if not isinstance(m, ContentLoss)]
        self.body, self.fast = items[first:], fast
        self.grid = 1
        level, self.levels = 0, {}
        for m in self.body:
            if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
                level += 1
            elif isinstance(m, (ContentLoss, StyleLoss)):
                self.levels[m] = level
        self.cut_level = level

    def run(self, x: torch.Tensor, t: Tile, height: int, width: int) -> dict[nn.Module, torch.Tensor]:
        """Interior features of each tap for the tile ``t`` of an image ``height`` x ``width`` (``x``: its region of
        the image, normalized here: no normalized copy of the whole image is ever made)."""
        out = {}
        for m in self.pixelwise:
            x = m(x)
        for m in self.body:
            if isinstance(m, (ContentLoss, StyleLoss)):
                s = 2 ** self.levels[m]
                # The interior at this level: its origin is on the grid; the image's last row/column ends the map.
                ys = slice((t.y0 - t.ty0) // s, x.shape[-2] if t.y1 == height else (t.y1 - t.ty0) // s)
                xs = slice((t.x0 - t.tx0) // s, x.shape[-1] if t.x1 == width else (t.x1 - t.tx0) // s)
                out[m] = x[..., ys, xs]
            elif isinstance(m, nn.Conv2d) and self.fast:
                x = fused.conv3x3(x, m.weight, m.bias)
            else:
                x = m(x)
        return out


def _matrix(f: torch.Tensor) -> torch.Tensor:
    return f.reshape(f.shape[1], -1)  # (1, C, h, w) -> (C, h*w)


def gram_sums(net: _Network, x: torch.Tensor, taps: Sequence[StyleLoss], tile: int, margin: int,
              content: Sequence[ContentLoss] = (), masks: dict | None = None) -> tuple[dict, dict, dict]:
    """One pass over the tiles, without autograd: ``sum over tiles of F F^T`` (the image's, unnormalized) of each
    style tap, each tap's feature count, and each content tap's summed squared error ``sum (F - T)^2``.

    ``masks``: for a tap in it, (R, 1, H, W) masks at the tap's size over the whole image; its sum is then the
    (R, C, C) stack of ``sum over tiles of (F m_r)(F m_r)^T``."""
    h, w = x.shape[-2:]
    masks = masks or {}
    sums, counts, sq = {}, {}, {tap: x.new_zeros(()) for tap in content}

    def gram(m: torch.Tensor) -> torch.Tensor:
        return fused.gram_product(m.contiguous()) if net.fast else torch.mm(m, m.t())

    with torch.no_grad():
        for t in tiles(h, w, tile, margin, net.grid):
            feats = net.run(x[..., t.ty0:t.ty1, t.tx0:t.tx1], t, h, w)
            for tap in taps:
                f = feats[tap]
                if tap in masks:
                    m = _crop(masks[tap], t, f, net.levels[tap])
                    g = torch.stack([gram(_matrix(f * m[r:r + 1])) for r in range(m.shape[0])])
                else:
                    g = gram(_matrix(f))
                sums[tap] = g if tap not in sums else sums[tap].add_(g)
                counts[tap] = counts.get(tap, 0) + f.shape[-2] * f.shape[-1]
            for tap in content:
                f = feats[tap]
                sq[tap] += (f - _crop(tap.target, t, f, net.levels[tap])).square().sum()
    return sums, counts, sq


class TiledObjective(Objective):
    """The whole image's weighted loss terms and image gradient, evaluated tile by tile (see the module's text).

    Args:
        model: the seed-form style model (:func:`stylize.objective.style_model`), targets set.
        content_losses, style_losses: its loss modules, in network order.
        weights: the loss weights.
        tile: interior tile size in px (a multiple of the pooling grid of the deepest tap).
        fast: the fast path's kernels (NNPACK convs, oneDNN Gram products).
    """

    def __init__(self, model: nn.Sequential, content_losses: Sequence[ContentLoss], style_losses: Sequence[StyleLoss],
                 weights: LossWeights, tile: int, fast: bool = False):
        model.requires_grad_(False)
        self.plain, self.weights, self.fast = model, weights, fast
        self.net = _Network(model, fast)
        self.net.grid = 2**self.net.cut_level
        self.margin = -(-halo(_cut_index(model)) // self.net.grid) * self.net.grid
        self.tile = max(self.net.grid, tile // self.net.grid * self.net.grid)
        self.image_taps = [m for m in self.net.prefix if isinstance(m, ContentLoss)]
        self.content_losses = [m for m in content_losses if m not in self.image_taps]
        self.style_losses = list(style_losses)
        self._state = None
        self.n_tiles = 0

    @classmethod
    def build(cls, net: nn.Module, content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: Config, tile: int,
              fast: bool = False, regions=None) -> "TiledObjective":
        """The objective of ``cfg``'s layers over ``net``; the targets computed tile by tile (bounded memory);
        ``regions``: a stage's :class:`~stylize.regions.StageRegions` (guided Gram losses)."""
        plain, content_losses, style_losses = style_model(net, content, styles, cfg, targets=False, regions=regions)
        obj = cls(plain, content_losses, style_losses, LossWeights.of(cfg), tile, fast)
        obj.set_targets(content, styles)
        normalized(cfg, content_losses, style_losses)
        return obj

    def _masks(self, tap: StyleLoss, height: int, width: int) -> torch.Tensor | None:
        """A masked tap's region masks at its layer's size over a ``height`` x ``width`` image (None: not masked);
        a region empty at that size has its weight 0 (:meth:`MaskedStyleLoss.layer_masks`)."""
        if not isinstance(tap, MaskedStyleLoss):
            return None
        s = 2 ** self.net.levels[tap]
        return tap.layer_masks((height // s, width // s))[0]

    def set_targets(self, content: torch.Tensor, styles: Sequence[torch.Tensor]) -> None:
        """Content features assembled from the content's tiles; each style image's Gram summed over its tiles,
        then blended as each tap blends (:func:`stylize.losses.blended_gram`); a masked tap's region ``r`` takes
        the guided Gram of its own style image under its style map (or all of it)."""
        with torch.no_grad():
            if self.image_taps:
                _prefix(self.net.prefix, content, set_image_targets=True)
            x = content
            h, w = x.shape[-2:]
            full = {}
            for t in tiles(h, w, self.tile, self.margin, self.net.grid):
                feats = self.net.run(x[..., t.ty0:t.ty1, t.tx0:t.tx1], t, h, w)
                for tap in self.content_losses:
                    f, s = feats[tap], 2 ** self.net.levels[tap]
                    if tap not in full:
                        full[tap] = f.new_empty((*f.shape[:2], h // s, w // s))
                    full[tap][..., t.y0 // s:t.y0 // s + f.shape[-2], t.x0 // s:t.x0 // s + f.shape[-1]] = f
            for tap in self.content_losses:
                tap.target = full[tap]
            grams = []
            for k, style in enumerate(styles):
                masks = {tap: self._style_masks(tap, k, *style.shape[-2:]) for tap in self.style_losses
                         if isinstance(tap, MaskedStyleLoss)}
                sums, counts, _ = gram_sums(self.net, style, self.style_losses, self.tile, self.margin, masks=masks)
                grams.append({tap: _normalize(sums[tap], counts[tap], masks.get(tap)) for tap in self.style_losses})
            for tap in self.style_losses:
                if isinstance(tap, MaskedStyleLoss):
                    tap.target = torch.stack([grams[k][tap][r] for r, k in enumerate(tap.style_of)])
                else:
                    tap.target = blended_gram([g[tap] for g in grams], tap.blend, gram=lambda g: g)

    def _style_masks(self, tap: MaskedStyleLoss, k: int, height: int, width: int) -> torch.Tensor:
        """For style image ``k`` (``height`` x ``width``): per region, its style map at the tap's size, or ones
        (the whole image gives the target; regions of other styles are computed and not used)."""
        s = 2 ** self.net.levels[tap]
        size = (height // s, width // s)
        ones = torch.ones(1, 1, *size, dtype=tap.masks.dtype, device=tap.masks.device)
        return torch.cat([ones if m is None else mask_at(m.to(ones), size, tap.erode) for m in tap.style_masks])

    def evaluate(self, image: torch.Tensor) -> Terms:
        """Pass 1: the losses from the Grams and squared errors summed over tiles; ``dL/dG`` kept for pass 2."""
        if self.image_taps:  # (with autograd) on the whole image: they set .loss
            _prefix(self.net.prefix, image)
        xd = image.detach()
        h, w = xd.shape[-2:]
        grid = tiles(h, w, self.tile, self.margin, self.net.grid)
        self.n_tiles = len(grid)
        masks = {tap: m for tap in self.style_losses if (m := self._masks(tap, h, w)) is not None}
        sums, counts, sq = gram_sums(self.net, xd, self.style_losses, self.tile, self.margin, self.content_losses,
                                     masks)
        wts = self.weights
        style_terms, upstream = [], {}
        for tap in self.style_losses:  # the loss of the summed Gram, as the loss module forms it, and its dL/dG
            g = _normalize(sums[tap], counts[tap], masks.get(tap)).requires_grad_()
            with torch.enable_grad():
                if tap in masks:  # masked_style_loss on the summed Grams: sum_r w_r mse(G_r, T_r)
                    weights = g.new_tensor(tap.layer_masks(masks[tap].shape[-2:])[1])
                    loss = tap.weight * (weights * (g - tap.target).square().mean((-2, -1))).sum()
                else:
                    loss = tap.weight * F.mse_loss(g, tap.target)
                (d,) = torch.autograd.grad(loss, g)
            tap.loss = loss.detach()
            style_terms.append(tap.loss)
            # dL/dF of the interior features F (C, n): (dG + dG^T) F / (C N), times the style weight; per region
            # (dG_r + dG_r^T) / (C sum m_r^2), applied to F m_r^2 in pass 2
            upstream[tap] = (d + d.transpose(-1, -2)).mul_(wts.style).div_(_norm(d.shape[-1], counts[tap], masks.get(tap)))
        for tap in self.content_losses:
            tap.loss = tap.weight * sq[tap] / tap.target.numel()
        image_terms = [m.loss for m in self.image_taps]
        content = sum(m.loss for m in self._content_order()) * wts.content
        style = sum(style_terms) * wts.style
        tv = tv_loss(image) * wts.tv if wts.tv else 0.0
        graph = (sum(image_terms) * wts.content if image_terms else 0.0) + tv  # what autograd differentiates
        self._state = (image, grid, upstream, graph, masks)
        return Terms(content, style, tv)

    def _content_order(self) -> list[ContentLoss]:
        return [*self.image_taps, *self.content_losses]  # network order: image-level taps come first

    def backward(self, terms: Terms) -> None:
        """Pass 2: each tile back-propagates its interior's share of the whole-image gradient; the halo's
        gradient is added too (it feeds the neighbours' interiors)."""
        image, grid, upstream, graph, masks = self._state
        self._state = None
        xd = image.detach()
        h, w = xd.shape[-2:]
        gx = torch.zeros_like(xd)
        wts = self.weights
        for t in grid:
            region = xd[..., t.ty0:t.ty1, t.tx0:t.tx1].clone().requires_grad_()
            with torch.enable_grad():
                feats = self.net.run(region, t, h, w)
                outs, grads = [], []
                for tap in self.style_losses:
                    f = feats[tap]
                    if f.numel():
                        outs.append(f)
                        fm = _matrix(f).detach()
                        if tap in masks:  # sum_r U_r (F m_r^2)
                            m2 = _crop(masks[tap], t, f, self.net.levels[tap]).square().reshape(len(upstream[tap]), 1, -1)
                            grads.append(torch.bmm(upstream[tap], fm * m2).sum(0).view_as(f))
                        else:
                            grads.append(torch.mm(upstream[tap], fm).view_as(f))
                for tap in self.content_losses:
                    f = feats[tap]
                    if f.numel():
                        target = _crop(tap.target, t, f, self.net.levels[tap])
                        outs.append(f)
                        grads.append((f.detach() - target).mul_(2 * wts.content * tap.weight / tap.target.numel()))
                if outs:
                    torch.autograd.backward(outs, grads)
            if region.grad is not None:
                gx[..., t.ty0:t.ty1, t.tx0:t.tx1] += region.grad
        roots, root_grads = [image], [gx]  # gx becomes image.grad when that is empty: no image-sized copy
        if isinstance(graph, torch.Tensor) and graph.requires_grad:
            roots.append(graph)
            root_grads.append(torch.ones_like(graph))
        torch.autograd.backward(roots, root_grads)


def _norm(channels: int, count: int, masks: torch.Tensor | None) -> torch.Tensor | float:
    """A Gram's divisor: ``C N`` (N features), or per region ``C sum m_r^2`` (clamped, as guided_gram does) as (R, 1, 1)."""
    if masks is None:
        return float(channels * count)
    return masks.flatten(1).square().sum(1).clamp_min(1e-12).mul(channels).view(-1, 1, 1)


def _normalize(sums: torch.Tensor, count: int, masks: torch.Tensor | None) -> torch.Tensor:
    """The Gram (or the (R, C, C) guided Grams) from the summed ``F F^T``."""
    return sums / _norm(sums.shape[-1], count, masks)


def _crop(target: torch.Tensor, t: Tile, f: torch.Tensor, level: int) -> torch.Tensor:
    s = 2**level
    return target[..., t.y0 // s:t.y0 // s + f.shape[-2], t.x0 // s:t.x0 // s + f.shape[-1]]


def _prefix(prefix: nn.Sequential, image: torch.Tensor, set_image_targets: bool = False,
            skip_taps: bool = False) -> torch.Tensor:
    """Run the modules before the first conv on the whole image; a content tap there records its loss (or, with
    ``set_image_targets``, takes its input as its target; with ``skip_taps`` it is passed by)."""
    x = image
    for m in prefix:
        if isinstance(m, ContentLoss):
            if skip_taps:
                continue
            if set_image_targets:
                m.set_target(x)
            else:
                m(x)
        else:
            x = m(x)
    return x


def _cut_index(model: nn.Sequential) -> int:
    """The layer-table index of the model's last VGG layer (the cut)."""
    names = {e.name: e for e in features.LAYERS}
    last = [names[n] for n, _ in model.named_children() if n in names][-1]
    return features.LAYERS.index(last)
