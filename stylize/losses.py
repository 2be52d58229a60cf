"""The losses of Gatys et al. as in the seed: pure functions, plus thin modules that hold targets.

The modules are the seed's ``ContentLoss``/``StyleLoss``: inserted into the network, they pass their
input through unchanged and record ``self.loss`` as a side effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (a, b, c, d) features, divided by a*b*c*d as in the seed.

    Returns:
        (a*b, a*b) tensor ``F F^T / (a*b*c*d)`` with ``F`` the features reshaped to (a*b, c*d).
    """
    a, b, c, d = features.size()
    f = features.reshape(a * b, c * d)  # (a*b, c*d)
    return torch.mm(f, f.t()).div(a * b * c * d)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between features and the content target (the seed's ``F.mse_loss``)."""
    return F.mse_loss(features, target)


def style_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the features' Gram matrix and the style target's Gram matrix."""
    return F.mse_loss(gram_matrix(features), target_gram)


def blended_gram(features: Sequence[torch.Tensor], blend: Sequence[float] | None = None,
                 gram: Callable[[torch.Tensor], torch.Tensor] = gram_matrix) -> torch.Tensor:
    """``sum_i w_i gram(features_i)`` with the weights normalized to sum 1: the style target of several style
    images (jcjohnson/neural-style's ``-style_blend_weights``). The images may differ in size: each Gram is
    already an average over its own pixels. ``blend=None`` weighs them equally; ``gram`` is
    :func:`gram_matrix` or a device's own kernel for it."""
    weights = [1.0] * len(features) if blend is None else [float(w) for w in blend]
    if len(weights) != len(features) or not features or sum(weights) <= 0 or min(weights) < 0:
        raise ValueError(f"need one non-negative blend weight per style image, not all 0; got {weights} "
                         f"for {len(features)} images")
    total = sum(weights)
    grams = [gram(f) * (w / total) for f, w in zip(features, weights)]
    return grams[0] if len(grams) == 1 else torch.stack(grams).sum(0)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation of a (N, C, H, W) image: the mean squared difference of vertically neighbouring pixels
    plus that of horizontally neighbouring ones (the smooth, squared form, as in Mahendran & Vedaldi 2015 with
    beta = 2). Means rather than sums keep one weight meaningful at every image size."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.square().mean() + dx.square().mean()


def temporal_loss(image: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ruder et al. 2016's short-term temporal loss: the mean of ``(image - warped)**2`` over the pixels (and
    channels) where ``mask`` (N, 1, H, W) is 1, ``warped`` being the previous output warped to this frame by
    optical flow (:mod:`stylize.flow`). Ruder et al. divide by all pixels; the mean over the consistent ones
    keeps one weight meaningful however much of the frame is occluded. No consistent pixel: 0."""
    n = mask.sum() * image.shape[1]
    if n == 0:
        return image.sum() * 0.0
    return ((image - warped).square() * mask).sum() / n


LAPLACIAN = (0.0, -1.0, 0.0, -1.0, 4.0, -1.0, 0.0, -1.0, 0.0)  # the 3x3 discrete Laplacian, negated (Li et al.)


def laplacian(image: torch.Tensor, pool: int = 4) -> torch.Tensor:
    """The Laplacian of a (N, C, H, W) image average-pooled ``pool`` x ``pool``, per channel, over the pixels whose
    3x3 neighbourhood lies inside (no padding): Li et al. 2017's content descriptor ("Laplacian-steered neural
    style transfer"), which holds the edges and thin lines that an untrained VGG's content layer describes poorly.
    The pooling keeps the coarse structure and lets the style paint the fine texture.

    ``pool`` is lowered where the image is smaller than 3 ``pool`` px, so any image has a Laplacian.

    Returns:
        (N, C, H // pool - 2, W // pool - 2); at (i, j): ``4 p[i, j] - p[i-1, j] - p[i+1, j] - p[i, j-1] - p[i, j+1]``
        (indices shifted by the border), with ``p`` the pooled image.
    """
    pool = max(1, min(pool, min(image.shape[-2:]) // 3))  # a small image (a coarse stage) keeps 3x3 pooled pixels
    x = F.avg_pool2d(image, pool) if pool > 1 else image
    c = x.shape[1]
    kernel = torch.tensor(LAPLACIAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 3).expand(c, 1, 3, 3)
    return F.conv2d(x, kernel, groups=c)


def laplacian_loss(image: torch.Tensor, target: torch.Tensor, pool: int = 4) -> torch.Tensor:
    """Mean squared error between :func:`laplacian` of ``image`` and ``target`` (the content's, pooled alike)."""
    return F.mse_loss(laplacian(image, pool), target)


class ContentLoss(nn.Module):
    """Records ``weight * content_loss(input, target)`` in ``self.loss``; returns its input."""

    def __init__(self, target: torch.Tensor | None, weight: float = 1.0):
        super().__init__()
        self.register_buffer("target", torch.empty(0) if target is None else target.detach())  # None: set later
        self.weight = weight
        self.loss = torch.zeros(())

    def set_target(self, features: torch.Tensor) -> None:
        self.target = features.detach()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = self.weight * content_loss(input, self.target)
        return input


class LaplacianLoss(ContentLoss):
    """A content loss on the image itself: records ``weight * laplacian_loss(input, target, pool)``.

    It sits at the model's input (the image in [0, 1], before the VGG normalization), so autograd runs it on
    the fast path too (:func:`stylize.fused.fuse` keeps modules before the first conv as they are). Its target is
    the content's Laplacian, so ``normalize: targets`` makes it the relative error of the Laplacian.
    """

    def __init__(self, content: torch.Tensor | None, weight: float = 1.0, pool: int = 4):
        self.pool = pool
        super().__init__(None if content is None else laplacian(content.detach(), pool), weight)

    def set_target(self, image: torch.Tensor) -> None:
        self.target = laplacian(image.detach(), self.pool)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = self.weight * laplacian_loss(input, self.target, self.pool)
        return input


class StyleLoss(nn.Module):
    """Records ``weight * style_loss(input, target)`` in ``self.loss``; returns its input.

    The target is the Gram matrix of the style image's features, or with several style images the blend of
    theirs (:func:`blended_gram`): give a list of feature tensors and their ``blend`` weights.
    """

    def __init__(self, target_features: torch.Tensor | Sequence[torch.Tensor] | None, weight: float = 1.0,
                 blend: Sequence[float] | None = None):
        super().__init__()
        self.blend = blend
        target = torch.empty(0) if target_features is None else self._gram(target_features)  # None: set later
        self.register_buffer("target", target)
        self.weight = weight
        self.loss = torch.zeros(())

    def _gram(self, features: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(features, torch.Tensor):
            return gram_matrix(features).detach()
        return blended_gram([f.detach() for f in features], self.blend)

    def set_target(self, features: torch.Tensor | Sequence[torch.Tensor]) -> None:
        self.target = self._gram(features)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = self.weight * style_loss(input, self.target)
        return input


def mask_at(mask: torch.Tensor, size: tuple[int, int], erode: int = 0) -> torch.Tensor:
    """A (R, 1, H, W) stack of masks in [0, 1] carried to a feature map of ``size`` (h, w): each output pixel the
    mean of the mask over the input pixels it covers (a box filter, as VGG's pools shrink the image), then
    eroded by ``erode`` px at that size (a (2e+1) x (2e+1) minimum; the image border does not erode), so a region's
    texture does not spill into its neighbour (Gatys et al. 2017, section 4.1)."""
    m = mask if tuple(mask.shape[-2:]) == tuple(size) else F.adaptive_avg_pool2d(mask, size)
    if erode > 0:
        m = -F.max_pool2d(-m, 2 * erode + 1, stride=1, padding=erode)  # max_pool pads with -inf: no border erosion
    return m


def guided_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The guided Gram matrix of Gatys et al. 2017: the Gram of the features weighted by a (soft) mask.

    Args:
        features: (1, C, H, W).
        mask: (1, 1, H, W) in [0, 1] (at the features' size: :func:`mask_at`).

    Returns:
        (C, C) ``(F m)(F m)^T / (C * sum(m^2))``: an average over the region's own pixels, so a region's Gram is
        comparable with a whole image's, and with ``m = 1`` it is exactly :func:`gram_matrix`. An empty region
        gives 0 (its denominator is clamped; its loss module drops it).
    """
    a, b, c, d = features.size()
    f = (features * mask).reshape(a * b, c * d)  # (C, H*W)
    area = mask.expand(a, 1, c, d).square().sum()
    return torch.mm(f, f.t()).div(area.clamp_min(1e-12) * b)


def masked_style_loss(features: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
                      weights: Sequence[float]) -> torch.Tensor:
    """``sum_r w_r * mse(guided_gram(features, masks[r]), targets[r])``: each region's Gram against its own target.

    Args:
        features: (1, C, H, W); masks: (R, 1, H, W); targets: (R, C, C); weights: R region weights.
    """
    total = features.new_zeros(())
    for r, w in enumerate(weights):
        if w:
            total = total + w * F.mse_loss(guided_gram(features, masks[r:r + 1]), targets[r])
    return total


class MaskedStyleLoss(StyleLoss):
    """A style loss per region: records ``weight * masked_style_loss(input, masks, targets, region weights)``.

    Args:
        target_features: the style images' features at this layer (a list, one per style image).
        weight: the layer's weight.
        masks: (R, 1, H, W) region masks at the content's size (any size: carried to the layer's by
            :func:`mask_at`, once per feature size).
        style_of: for each region, the index of its style image in ``target_features``.
        style_masks: for each region, None (the whole style image gives its target) or a (1, 1, h, w) map over
            its style image (the region of the style image that does).
        region_weights: one weight per region.
        erode: :func:`mask_at`'s erosion, in px at each layer's size.
    """

    def __init__(self, target_features: Sequence[torch.Tensor] | None, weight: float, masks: torch.Tensor,
                 style_of: Sequence[int], style_masks: Sequence[torch.Tensor | None],
                 region_weights: Sequence[float], erode: int = 0):
        nn.Module.__init__(self)
        self.blend = None
        self.register_buffer("masks", masks.detach())
        self.style_of, self.style_masks = list(style_of), list(style_masks)
        self.region_weights, self.erode = [float(w) for w in region_weights], erode
        self._at: tuple[tuple[int, int], torch.Tensor, list[float]] | None = None  # masks at the layer's size
        self.register_buffer("target", torch.empty(0))
        if target_features is not None:
            self.set_target(target_features)
        self.weight = weight
        self.loss = torch.zeros(())

    def layer_masks(self, size: tuple[int, int]) -> tuple[torch.Tensor, list[float]]:
        """The masks at a layer of ``size`` and the region weights there (0 for a region empty at that size)."""
        if self._at is None or self._at[0] != tuple(size):
            m = mask_at(self.masks, tuple(size), self.erode)
            present = (m.flatten(1).sum(1) > 1e-6).tolist()
            self._at = (tuple(size), m, [w if p else 0.0 for w, p in zip(self.region_weights, present)])
        return self._at[1], self._at[2]

    def set_target(self, features: torch.Tensor | Sequence[torch.Tensor]) -> None:
        feats = [features] if isinstance(features, torch.Tensor) else list(features)
        grams = []
        for s, style_mask in zip(self.style_of, self.style_masks):
            f = feats[s].detach()
            m = torch.ones_like(f[:, :1]) if style_mask is None else mask_at(style_mask.to(f), f.shape[-2:], self.erode)
            grams.append(guided_gram(f, m))
        self.target = torch.stack(grams)  # (R, C, C)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        masks, weights = self.layer_masks(input.shape[-2:])
        self.loss = self.weight * masked_style_loss(input, masks, self.target, weights)
        return input


def target_scale(target: torch.Tensor) -> float:
    """``mean(target**2)``: the loss a zero input would have, the scale ``normalize: targets`` divides by.

    Dividing a layer's ``F.mse_loss`` by it turns the loss into the relative squared error
    ``||x - t||^2 / ||t||^2``, so layers whose activations differ in scale by orders of magnitude (as in an
    untrained VGG) contribute comparably (He, Wang & Hopcroft 2016's automatic per-layer normalization).
    An all-zero target (e.g. a black image at a dead layer) has no scale; it gives 1, leaving the weight as is.
    """
    scale = target.detach().double().pow(2).mean().item()  # float64: Gram entries of deep layers are tiny
    return scale if scale > 0 else 1.0


def normalize_by_targets(losses: list[nn.Module]) -> list[float]:
    """Divide each loss module's weight by :func:`target_scale` of its target (a content layer's features, a
    style layer's Gram matrix), once, at setup; returns the scales. The hot loop is unchanged."""
    scales = [target_scale(m.target) for m in losses]
    for m, scale in zip(losses, scales):
        m.weight = m.weight / scale
    return scales
