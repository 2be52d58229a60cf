"""Regional styles (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer"): masks and
colour-coded segmentation maps, read and checked here, and carried to each stage's size.

A region is a grayscale mask over the content (soft values allowed: 255 is inside, 0 outside) and the style
image whose statistics it should take, optionally guided by a map over that style image (only the map's region
of the style image gives the target). Pixels covered by no mask get the content loss only, or the
``background_style`` (a region whose mask is ``1 - sum of the masks``, clamped to [0, 1]).

The spellings (config keys and flags alike):

* ``regions``: ``MASK=STYLE[:WEIGHT]`` or ``MASK=STYLE@STYLE_MAP[:WEIGHT]``;
* ``seg`` + ``seg_colors``: a colour-coded map of the content and ``#rrggbb=STYLE[@STYLE_MAP]`` per colour; a
  style map is coded with the same colours.

The math (guided Gram matrices, masks carried to each layer, erosion) is :class:`stylize.losses.MaskedStyleLoss`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from . import colors, images
from .errors import StylizeError

ASPECT_TOLERANCE = 0.01  # a mask's aspect may differ from its image's by this much (relative): resampling noise
SEG_TOLERANCE = 40  # a map pixel is a colour's when each channel is within this of it (JPEG noise, antialiasing)
_COLOR = re.compile(r"^#?([0-9a-fA-F]{6})$")


@dataclass(frozen=True)
class RegionSpec:
    """One region as the user spelled it: a mask (a file, or a colour of the seg map) and its style."""

    mask: str  # a grayscale mask file, or '#rrggbb' of the seg map
    style: str
    style_map: str | None = None
    weight: float = 1.0


def parse_region(text: str, where: str = "regions") -> RegionSpec:
    """``MASK=STYLE[@STYLE_MAP][:WEIGHT]`` -> :class:`RegionSpec`; a bad spelling is a one-line error."""
    mask, sep, rest = str(text).partition("=")
    if not sep or not mask.strip() or not rest.strip():
        raise StylizeError(f"{where}: {text!r}: expected MASK=STYLE[:WEIGHT], e.g. sky.png=starry.jpg:2")
    weight = 1.0
    if ":" in rest:
        rest, _, w = rest.rpartition(":")
        try:
            weight = float(w)
        except ValueError:
            raise StylizeError(f"{where}: {text!r}: the region weight {w!r} is not a number; "
                               "write MASK=STYLE:WEIGHT, e.g. sky.png=starry.jpg:2") from None
        if not weight >= 0 or weight == float("inf"):
            raise StylizeError(f"{where}: {text!r}: the region weight must be a finite number >= 0, got {w!r}")
    style, _, style_map = rest.partition("@")
    if not style.strip():
        raise StylizeError(f"{where}: {text!r}: no style image after '='")
    return RegionSpec(mask.strip(), style.strip(), style_map.strip() or None, weight)


def parse_regions(value) -> list[str] | None:
    """The ``regions`` key: a list of ``MASK=STYLE[:WEIGHT]`` (or one string); each checked, kept as given."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(v, str) for v in items):
        raise StylizeError(f"regions: expected a list of MASK=STYLE[:WEIGHT], got {str(value)[:100]}")
    for item in items:
        parse_region(item)
    return list(items)


def parse_color(text: str, where: str = "seg_colors") -> tuple[int, int, int]:
    found = _COLOR.match(str(text).strip())
    if not found:
        raise StylizeError(f"{where}: {text!r} is not a colour; write it #rrggbb, e.g. #ff0000")
    h = found.group(1)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def parse_seg_colors(value) -> list[str] | None:
    """The ``seg_colors`` key: ``'#ff0000=a.jpg,#0000ff=b.jpg'``, a list of such items, or a mapping
    colour: style. Returns the items as ``#rrggbb=STYLE[@MAP][:WEIGHT]`` strings, each checked."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = [f"{k}={v}" for k, v in value.items()]
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(v, str) for v in items):
        raise StylizeError(f"seg_colors: expected '#rrggbb=STYLE,...', got {str(value)[:100]}")
    for item in items:
        parse_color(parse_region(item, "seg_colors").mask)
    return list(items)


def with_paths(text: str, path, where: str = "regions") -> str:
    """A ``MASK=STYLE[@STYLE_MAP][:WEIGHT]`` item with ``path`` applied to each file in it (a colour stays)."""
    spec = parse_region(text, where)
    mask = spec.mask if _COLOR.match(spec.mask) else path(spec.mask)
    style_map = f"@{path(spec.style_map)}" if spec.style_map else ""
    return f"{mask}={path(spec.style)}{style_map}" + (f":{spec.weight!r}" if spec.weight != 1 else "")


def input_files(regions: Sequence[str] | None, seg: str | None, seg_colors: Sequence[str] | None) -> list[str]:
    """The mask, map and style-map files a run reads besides its content and style images (a checkpoint's digest)."""
    specs = [parse_region(r) for r in regions or ()]
    seg_specs = [parse_region(c, "seg_colors") for c in seg_colors or ()]
    return [*(s.mask for s in specs), *([seg] if seg else []), *(s.style_map for s in specs + seg_specs if s.style_map)]


@dataclass
class Regions:
    """A run's regions, read and checked: masks at the content's aspect, styles by index into ``styles``."""

    masks: list[Image.Image]  # mode L, one per region (the background's is made per stage)
    style_of: list[int]
    style_maps: list[Image.Image | None]  # mode L over the region's style image, or None: all of it
    weights: list[float]
    styles: list[str]  # the run's style images, in order, each once
    background: int | None = None  # the background style's index in styles, or None: content only
    erode: int = 0

    def at(self, width: int, height: int, style_size: tuple[int, int], device: torch.device) -> "StageRegions":
        """The regions of a stage whose content is ``width`` x ``height`` and style images ``style_size``."""
        masks = torch.cat([_tensor(m.resize((width, height), Image.Resampling.BILINEAR)) for m in self.masks])
        style_of, weights = list(self.style_of), list(self.weights)
        style_masks = [None if m is None else _tensor(images.resize_cover(m, *style_size)) for m in self.style_maps]
        if self.background is not None:
            masks = torch.cat([masks, (1 - masks.sum(0, keepdim=True)).clamp_(0, 1)])
            style_of, weights, style_masks = style_of + [self.background], weights + [1.0], style_masks + [None]
        return StageRegions(masks.to(device), style_of, [None if m is None else m.to(device) for m in style_masks],
                            weights, self.erode)


@dataclass
class StageRegions:
    """One stage's regions as tensors: what :class:`stylize.losses.MaskedStyleLoss` takes."""

    masks: torch.Tensor  # (R, 1, H, W) in [0, 1], at the stage's content size
    style_of: list[int]
    style_masks: list[torch.Tensor | None]  # (1, 1, h, w) at the stage's style size, or None
    weights: list[float]
    erode: int = 0


def palette(content: Image.Image, style_pils: Sequence[Image.Image], regions: Regions) -> Image.Image:
    """``style_palette`` region by region: the content recoloured to each region's style image
    (:func:`colors.style_palette`), blended by the masks (the background's too); pixels no mask covers keep the
    content's colours. Overlapping masks share a pixel in proportion."""
    x = images.to_tensor(content)
    masks = regions.at(content.width, content.height, (1, 1), torch.device("cpu"))
    total = masks.masks.sum(0, keepdim=True)
    out = x * (1 - total).clamp(min=0)
    recoloured: dict[int, torch.Tensor] = {}
    for m, s in zip(masks.masks, masks.style_of):
        if s not in recoloured:
            recoloured[s] = colors.style_palette(x, [images.to_tensor(style_pils[s])])
        out = out + recoloured[s] * (m / total.clamp(min=1))
    return images.to_pil(out.clamp_(0, 1))


def _tensor(gray: Image.Image) -> torch.Tensor:
    """A mode-L image as a (1, 1, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.array(gray, dtype=np.uint8)).float().div_(255).view(1, 1, gray.height, gray.width)


def _check_aspect(what: str, size: tuple[int, int], of: str, ref: tuple[int, int]) -> None:
    aspect, want = size[0] / size[1], ref[0] / ref[1]
    if abs(aspect / want - 1) > ASPECT_TOLERANCE:
        raise StylizeError(f"{what} is {size[0]}x{size[1]} px (aspect {aspect:.3f}), but {of} is {ref[0]}x{ref[1]} "
                           f"(aspect {want:.3f}): a mask must have its image's aspect (within 1 %). "
                           "Crop or pad the mask to match.")


def _image(path: str, what: str) -> Image.Image:
    try:
        return images.load_image(path)
    except StylizeError as e:
        raise StylizeError(f"{what}: {e}") from None


def _gray(path: str, what: str) -> Image.Image:
    return _image(path, what).convert("L")


def color_mask(rgb: Image.Image, color: tuple[int, int, int]) -> Image.Image:
    """The pixels of a colour-coded map within :data:`SEG_TOLERANCE` of ``color`` (each channel): 255, else 0."""
    a = np.asarray(rgb, dtype=np.int16)
    inside = (np.abs(a - np.array(color, dtype=np.int16)) <= SEG_TOLERANCE).all(-1)
    return Image.fromarray((inside * 255).astype(np.uint8), "L")


def load(content: Image.Image, regions: Sequence[str] | None = None, seg: str | None = None,
         seg_colors: Sequence[str] | None = None, background_style: str | None = None,
         erode: int = 0) -> Regions:
    """Read and check a run's regions (``regions`` items, or ``seg`` with ``seg_colors``) against the content.

    Raises:
        StylizeError: a mask missing or unreadable, a mask's aspect off the content's (or a style map's off its
            style image's) by more than 1 %, a colour absent from its map.
    """
    size = content.size
    specs: list[tuple[RegionSpec, Image.Image]] = []
    for text in regions or ():
        spec = parse_region(text)
        mask = _gray(spec.mask, "region mask")
        _check_aspect(f"region mask {spec.mask}", mask.size, "the content", size)
        specs.append((spec, mask))
    if seg is not None:
        content_map = _image(seg, "seg map")
        _check_aspect(f"seg map {seg}", content_map.size, "the content", size)
        for text in seg_colors or ():
            spec = parse_region(text, "seg_colors")
            mask = color_mask(content_map, parse_color(spec.mask))
            if mask.getextrema()[1] == 0:
                raise StylizeError(f"seg_colors: colour {spec.mask} does not occur in the seg map {seg}. "
                                   "Check the colour codes (a colour picker on the map gives them).")
            specs.append((spec, mask))
    styles: list[str] = []

    def index(style: str) -> int:
        if style not in styles:
            styles.append(style)
        return styles.index(style)

    style_of, style_maps = [], []
    for spec, _ in specs:
        style_of.append(index(spec.style))
        style_maps.append(None if spec.style_map is None else _style_map(spec))
    background = None if background_style is None else index(background_style)
    return Regions([m for _, m in specs], style_of, style_maps, [s.weight for s, _ in specs], styles, background, erode)


def _style_map(spec: RegionSpec) -> Image.Image:
    """The map over a region's style image: grayscale (``--region``) or coded with the region's colour (seg)."""
    style = _image(spec.style, "region style")
    if _COLOR.match(spec.mask):  # a seg region: the map is colour-coded alike
        rgb = _image(spec.style_map, "style map")
        _check_aspect(f"style map {spec.style_map}", rgb.size, f"its style image {spec.style}", style.size)
        mask = color_mask(rgb, parse_color(spec.mask))
        if mask.getextrema()[1] == 0:
            raise StylizeError(f"seg_colors: colour {spec.mask} does not occur in the style map {spec.style_map}.")
        return mask
    mask = _gray(spec.style_map, "style map")
    _check_aspect(f"style map {spec.style_map}", mask.size, f"its style image {spec.style}", style.size)
    return mask
