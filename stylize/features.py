"""VGG19 as data: the layer table, both naming schemes, the feature network and the style model.

The style model is built the way the seed (the PyTorch neural-style tutorial) builds it: a
``Normalization`` layer first, then VGG19's ``features`` layer by layer (ReLUs not in-place), a
``ContentLoss``/``StyleLoss`` module inserted right after each named layer, and the network cut
after the last loss module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .errors import StylizeError, did_you_mean
from .losses import ContentLoss, LaplacianLoss, MaskedStyleLoss, StyleLoss

# torchvision.models.vgg cfgs["E"]: channels of each 3x3 conv, "M" = 2x2 max pool.
VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                    512, 512, 512, 512, "M", 512, 512, 512, 512, "M")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Layer:
    """One entry of ``vgg19().features``."""

    index: int  # position in torchvision's vgg19().features (so state_dict keys match)
    kind: str  # "conv" | "relu" | "pool"
    name: str  # the seed's name: conv_4, relu_4, pool_4 (pool named after the conv before it)
    paper_name: str  # Gatys et al.'s name: conv2_2, relu2_2, pool2
    channels: int  # output channels
    pools_before: int  # max pools applied before this layer's output (its stride is 2**pools_before)


def _vgg19_layers() -> tuple[Layer, ...]:
    layers, index, conv, block, in_block, channels, pools = [], 0, 0, 1, 0, 3, 0
    for v in VGG19_CFG:
        if v == "M":
            pools += 1
            layers.append(Layer(index, "pool", f"pool_{conv}", f"pool{block}", channels, pools))
            index, block, in_block = index + 1, block + 1, 0
            continue
        conv, in_block, channels = conv + 1, in_block + 1, int(v)
        layers.append(Layer(index, "conv", f"conv_{conv}", f"conv{block}_{in_block}", channels, pools))
        layers.append(Layer(index + 1, "relu", f"relu_{conv}", f"relu{block}_{in_block}", channels, pools))
        index += 2
    return tuple(layers)


LAYERS: tuple[Layer, ...] = _vgg19_layers()
_BY_NAME: dict[str, Layer] = {n: layer for layer in LAYERS for n in (layer.name, layer.paper_name)}
LAYER_NAMES: tuple[str, ...] = tuple(_BY_NAME)


def conv_shapes() -> dict[int, tuple[int, int, int, int]]:
    """VGG19's conv weight shapes by features index, from the layer table (nothing allocated)."""
    shapes, in_ch = {}, 3
    for entry in LAYERS:
        if entry.kind == "conv":
            shapes[entry.index] = (entry.channels, in_ch, 3, 3)
            in_ch = entry.channels
    return shapes


def layer(name: str) -> Layer:
    """Look a layer up by either name (``conv_4`` or ``conv2_2``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise StylizeError(
            f"unknown VGG19 layer '{name}'.{did_you_mean(name, LAYER_NAMES)} "
            "Use the seed's names (conv_1..conv_16, relu_N, pool_N) or the paper's (conv1_1..conv5_4, relu4_2, pool3)."
        ) from None


class Normalization(nn.Module):
    """``(img - mean) / std`` with ImageNet statistics, as the first layer of the style model."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).reshape(-1, 1, 1))  # (3, 1, 1)
        self.register_buffer("std", torch.tensor(std).reshape(-1, 1, 1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


POOLINGS = ("max", "avg")


def vgg19_features(upto: int = len(LAYERS) - 1, pooling: str = "max",
                   channels: Sequence[int] | None = None) -> nn.Sequential:
    """VGG19 ``features`` up to and including layer ``upto``, uninitialised.

    Indices match ``torchvision.models.vgg19().features`` so its state_dict keys (``0.weight``...) load.
    ReLUs are built not in-place: the loss modules need the tensors they observe unchanged.
    ``pooling="avg"`` puts 2x2 average pools where VGG19 has max pools (Gatys et al. 2016 found them to give
    smoother results); pools have no weights, so the same state_dict loads either way.
    ``channels`` (output channels of each conv, in order; at least as many as the convs up to ``upto``) builds a
    channel-pruned VGG19 (``stylize prune --method l1-structured``); None means VGG19's own.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    widths = iter(channels) if channels is not None else None
    modules, in_ch = [], 3
    for entry in LAYERS[: upto + 1]:
        if entry.kind == "conv":
            out_ch = entry.channels if widths is None else int(next(widths))
            modules.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1))
            in_ch = out_ch
        elif entry.kind == "relu":
            modules.append(nn.ReLU(inplace=False))
        else:
            pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
            modules.append(pool(kernel_size=2, stride=2))
    return nn.Sequential(*modules)


def init_untrained(features: nn.Sequential, seed: int = 0) -> nn.Sequential:
    """Deterministic random init, the same scheme as torchvision's VGG (Kaiming normal, fan_out, zero bias).

    Uses its own generator, drawing conv by conv from the first, so a layer's weights do not depend on
    where the network is cut, on the global RNG, or on the torchvision version.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in features:
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_out) ** 0.5)
                m.bias.zero_()
    return features


def last_tap(content_layers: Mapping[str, float], style_layers: Mapping[str, float]) -> int:
    """Index of the deepest layer that carries a loss: where the network is cut."""
    return max(layer(n).index for n in [*content_layers, *style_layers])


def split_taps(style_layers: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """Scale control (Gatys et al. 2017, section 5): the style taps split by depth into (fine, coarse).

    The shallower half of the taps in network order (rounded down) is fine: small receptive fields, the texture's
    brush strokes and grain; the rest is coarse: the larger structures. The seed's conv_1..conv_5 split into
    conv_1, conv_2 (fine) and conv_3..conv_5 (coarse); Gatys' conv1_1..conv5_1 into conv1_1, conv2_1 and the rest.
    """
    names = sorted(style_layers, key=lambda n: layer(n).index)
    k = len(names) // 2
    return names[:k], names[k:]


def _loss_name(model: nn.Sequential, kind: str, entry: Layer) -> str:
    """The seed's ``style_loss_{N}`` (N = conv count); ``style_loss_relu_N`` when conv_N already has one.

    The seed's scheme gives conv_1 and relu_1 the same name, and ``add_module`` would then silently replace
    the first loss module with the second.
    """
    name = f"{kind}_loss_{entry.name.split('_')[1]}"
    return f"{kind}_loss_{entry.name}" if name in model._modules else name


def build_style_model(
    features: nn.Sequential,
    content_img: torch.Tensor,
    style_img: torch.Tensor | Sequence[torch.Tensor],
    content_layers: Mapping[str, float],
    style_layers: Mapping[str, float],
    style_blend: Sequence[float] | None = None,
    targets: bool = True,
    style_loss: type[StyleLoss] = StyleLoss,
    laplacian_weight: float = 0.0,
    laplacian_pool: int = 4,
    regions=None,
    scale_split: bool = False,
) -> tuple[nn.Sequential, list[ContentLoss], list[StyleLoss]]:
    """Insert loss modules after the named layers, as the seed's ``get_style_model_and_losses`` does.

    Args:
        features: VGG19 features (at least up to the last tap), on the images' device.
        content_img, style_img: (1, 3, H, W) images in [0, 1]; ``style_img`` may be a list of style images (of
            any sizes), whose Gram matrices are blended with the weights ``style_blend`` (default: equal).
        content_layers, style_layers: layer name (either scheme) -> per-layer weight.
        targets: False leaves the loss modules' targets empty, for a caller that computes them through its own
            kernels (the fast path: :func:`fused.fuse` with the images), so the images run once, not twice.
        style_loss: the style loss module (a device with its own Gram kernels subclasses :class:`StyleLoss`).
        laplacian_weight: > 0 adds a :class:`LaplacianLoss` of this weight (pooling ``laplacian_pool``) right after
            the normalization, the first of the content losses; 0 (the seed): none.
        regions: a stage's regions (:class:`stylize.regions.StageRegions`): every style tap is a
            :class:`MaskedStyleLoss` over them (guided Gram matrices); None: plain style losses.
        scale_split: two style images (coarse, fine): the fine taps of :func:`split_taps` take the second's Gram
            matrix, the coarse ones the first's (each layer's blend is one-hot).

    Returns:
        The model (Normalization, VGG layers named ``conv_N``/``relu_N``/``pool_N``, loss modules, cut after the
        last loss), and the content and style loss modules in network order.
    """
    content_at = {layer(n).index: w for n, w in content_layers.items()}
    style_at = {layer(n).index: w for n, w in style_layers.items()}
    blends: dict[int, Sequence[float] | None] = {}
    if scale_split:
        fine, coarse = split_taps(style_layers)
        blends = {**{layer(n).index: (0.0, 1.0) for n in fine}, **{layer(n).index: (1.0, 0.0) for n in coarse}}
    cut = last_tap(content_layers, style_layers)
    device = content_img.device
    model = nn.Sequential(Normalization().to(device))
    content_losses: list[ContentLoss] = []
    style_losses: list[StyleLoss] = []
    # Targets come from running the two images alongside the model as it grows: the seed re-runs the
    # whole prefix at every tap, which gives the same tensors at O(layers^2) cost.
    with torch.no_grad():
        styles = [style_img] if isinstance(style_img, torch.Tensor) else list(style_img)
        c, ss = (model(content_img), [model(s) for s in styles]) if targets else (None, None)
        if laplacian_weight > 0:  # on the (normalized) image itself, before any conv
            loss = LaplacianLoss(c, laplacian_weight, laplacian_pool)
            model.add_module("content_loss_laplacian", loss)
            content_losses.append(loss)
        for entry in LAYERS[: cut + 1]:
            module = features[entry.index]
            model.add_module(entry.name, module)
            if targets:
                c, ss = module(c), [module(s) for s in ss]
            # Same order as the seed: content loss first when a layer carries both.
            if entry.index in content_at:
                loss = ContentLoss(c, content_at[entry.index])
                model.add_module(_loss_name(model, "content", entry), loss)
                content_losses.append(loss)
            if entry.index in style_at:
                if regions is not None:
                    loss = MaskedStyleLoss(ss, style_at[entry.index], regions.masks, regions.style_of,
                                           regions.style_masks, regions.weights, regions.erode)
                else:
                    loss = style_loss(ss, style_at[entry.index], blends.get(entry.index, style_blend))
                model.add_module(_loss_name(model, "style", entry), loss)
                style_losses.append(loss)
    return model, content_losses, style_losses
