"""Colour control for style transfer, as pure tensor functions: luminance-only transfer and histogram matching.

Two classic ways to keep a stylization from taking over the content photo's colours (Gatys et al. 2016,
"Preserving Color in Neural Artistic Style Transfer"):

- :func:`original_colors` (after the run): keep the result's luminance, take the chroma from the content.
  Done in YCbCr, as jcjohnson/neural-style's ``-original_colors``: Y is a linear mix of R, G, B, so the swap
  is two 3x3 matrix products, exactly invertible, and its Y/Cb/Cr are what JPEG and Pillow use. CIELAB
  separates lightness more perceptually, but needs a gamma curve, a white point and a cube root for little
  visible difference here.
- :func:`match_histogram` (before the run): remap each RGB channel of the style image so that its histogram
  is the content's; the network then sees the style's strokes in the content's palette.

And the other way round, :func:`style_palette` (before the run, ``style_palette: true``, the untrained
recipe's): the content recoloured to the style's histograms, so the run starts from, and is held to, the photo's
structure in the painting's colours. Random filters describe structure poorly; left to move the colours by
themselves they moved the structure too (issue 21).

Images are (N, 3, H, W) float tensors in [0, 1] (``images.to_tensor`` gives N = 1), on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, full range (JFIF / JPEG, Pillow's "YCbCr" mode): no 16..235 headroom.
KR, KB = 0.299, 0.114
KG = 1.0 - KR - KB
# Cb and Cr are centred on 128 of 255 (not 0.5), so that x * 255 is Pillow's 8-bit YCbCr before rounding.
CHROMA_OFFSET = 128.0 / 255.0

# Rows: Y, Cb, Cr from R, G, B. Cb = (B - Y) / (2 (1 - KB)), Cr = (R - Y) / (2 (1 - KR)): the JFIF matrix
# (0.299, 0.587, 0.114; -0.168736, -0.331264, 0.5; 0.5, -0.418688, -0.081312) written from its definition.
_RGB_TO_YCBCR = torch.tensor([
    [KR, KG, KB],
    [-KR / (2 * (1 - KB)), -KG / (2 * (1 - KB)), 0.5],
    [0.5, -KG / (2 * (1 - KR)), -KB / (2 * (1 - KR))],
], dtype=torch.float64)
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)  # exact inverse in float64: the round trip loses nothing
_OFFSET = torch.tensor([0.0, CHROMA_OFFSET, CHROMA_OFFSET], dtype=torch.float64)


def _check_image(name: str, x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected an (N, 3, H, W) image tensor, got shape {tuple(x.shape)}")


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ x`` at every pixel of (N, 3, H, W) ``x``, in ``x``'s dtype and device."""
    return torch.einsum("ij,njhw->nihw", matrix.to(x.device, x.dtype), x)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB to YCbCr, ITU-R BT.601 full range as JPEG and Pillow use.

    Args:
        x: (N, 3, H, W) RGB in [0, 1].

    Returns:
        (N, 3, H, W) Y, Cb, Cr; Y in [0, 1], Cb and Cr centred on 128/255 (so ``255 * out`` is Pillow's
        ``Image.convert("YCbCr")`` before its rounding).
    """
    _check_image("rgb_to_ycbcr", x)
    return _apply(_RGB_TO_YCBCR, x) + _OFFSET.to(x.device, x.dtype).reshape(1, 3, 1, 1)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """YCbCr (as :func:`rgb_to_ycbcr` gives it) back to RGB; the exact inverse, not clamped.

    A Y/Cb/Cr combination that no RGB colour has (e.g. a dark Y with a strong chroma) gives values outside
    [0, 1]; callers clamp if they need an image.

    Args:
        x: (N, 3, H, W) Y, Cb, Cr.

    Returns:
        (N, 3, H, W) RGB.
    """
    _check_image("ycbcr_to_rgb", x)
    return _apply(_YCBCR_TO_RGB, x - _OFFSET.to(x.device, x.dtype).reshape(1, 3, 1, 1))


def original_colors(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer: the result's luminance with the content's colours.

    The stylized ``result``'s Y channel is combined with the ``content`` image's Cb and Cr (YCbCr, BT.601
    full range; jcjohnson/neural-style's ``-original_colors``) and converted back to RGB, clamped to [0, 1].
    Where no clamping is needed the output's Y is exactly the result's Y.

    Args:
        result: (N, 3, H, W) stylized image in [0, 1].
        content: (N or 1, 3, h, w) content image in [0, 1]; resized (bilinear, antialiased) to H x W if its size
            differs.

    Returns:
        (N, 3, H, W) RGB in [0, 1] (plain tensor ops: differentiable in ``result`` where not clamped).
    """
    _check_image("original_colors result", result)
    _check_image("original_colors content", content)
    if content.shape[-2:] != result.shape[-2:]:
        content = F.interpolate(content, size=result.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    luma = rgb_to_ycbcr(result)[:, :1]  # (N, 1, H, W)
    chroma = rgb_to_ycbcr(content.to(result.dtype))[:, 1:]  # (N or 1, 2, H, W)
    chroma = chroma.expand(result.shape[0], -1, -1, -1)
    return ycbcr_to_rgb(torch.cat([luma, chroma], dim=1)).clamp(0.0, 1.0)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``numpy.interp``: piecewise-linear through (xp, fp) (xp increasing), constant beyond its ends."""
    if xp.numel() == 1:
        return fp.expand_as(x).clone()
    i = (torch.searchsorted(xp, x, right=True) - 1).clamp(0, xp.numel() - 2)  # xp[i] <= x < xp[i + 1]
    x0, x1, f0, f1 = xp[i], xp[i + 1], fp[i], fp[i + 1]
    out = f0 + (f1 - f0) * (x - x0) / (x1 - x0)
    return torch.where(x <= xp[0], fp[0], torch.where(x >= xp[-1], fp[-1], out))


def _match_channel(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """One channel: each source value -> the reference value at the same quantile (skimage's
    ``_match_cumulative_cdf`` for float images), in float64."""
    src_values, src_index, src_counts = torch.unique(source.reshape(-1), return_inverse=True, return_counts=True)
    ref_values, ref_counts = torch.unique(reference.reshape(-1), return_counts=True)
    src_quantiles = torch.cumsum(src_counts, 0).double() / source.numel()  # fraction of pixels <= each value
    ref_quantiles = torch.cumsum(ref_counts, 0).double() / reference.numel()
    mapped = _interp(src_quantiles, ref_quantiles, ref_values.double())
    return mapped[src_index].reshape(source.shape)


def match_histogram(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram matching in RGB: ``source``'s colours remapped to ``reference``'s distribution.

    For ``--match-histogram`` the source is the style image and the reference the content image, before the
    run. Exact CDF (quantile) mapping, as ``skimage.exposure.match_histograms`` does for float images: each
    distinct source value goes to the reference value at the same cumulative frequency, linearly interpolated
    between the reference's distinct values. The mapping is monotone per channel, so the style's structure
    (edges, strokes) is kept; only the tone curves change. The two images may differ in size.

    Args:
        source: (N, 3, H, W) image in [0, 1] whose colours change (the style image).
        reference: (N or 1, 3, h, w) image in [0, 1] whose per-channel histograms are the target (the content).

    Returns:
        (N, 3, H, W) in ``source``'s dtype; values are drawn from ``reference``'s range, so stay in [0, 1].
    """
    _check_image("match_histogram source", source)
    _check_image("match_histogram reference", reference)
    if reference.shape[0] not in (1, source.shape[0]):
        raise ValueError(f"match_histogram: reference batch {reference.shape[0]} must be 1 or the source's {source.shape[0]}")
    out = torch.empty_like(source)
    for n in range(source.shape[0]):
        ref = reference[n if reference.shape[0] > 1 else 0]
        for c in range(3):
            out[n, c] = _match_channel(source[n, c], ref[c].to(source.device)).to(source.dtype)
    return out


def style_palette(content: torch.Tensor, styles: list[torch.Tensor]) -> torch.Tensor:
    """The content recoloured to the style images' colours: :func:`match_histogram` of ``content`` against the
    pixels of all ``styles`` pooled (each counts by its pixel count; blend weights are not applied).

    Args:
        content: (1, 3, H, W) image in [0, 1].
        styles: (1, 3, h_i, w_i) images in [0, 1], any sizes.

    Returns:
        (1, 3, H, W): per channel, each content value replaced by the pooled styles' value at the same quantile.
    """
    for i, s in enumerate(styles):
        _check_image(f"style_palette style {i}", s)
    reference = torch.cat([s[:1].flatten(2) for s in styles], dim=2).unsqueeze(2)  # (1, 3, 1, sum of h_i w_i)
    return match_histogram(content, reference)
