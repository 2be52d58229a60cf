"""The regional-styles example (docs/regions.md): the demo content, a left/right half mask, two procedural styles.

Draws two styles with flat, distinct palettes (warm: reds, oranges, cream; cool: blues, teal, white) as smooth
random blobs quantized to their palette, writes the masks, runs ``stylize`` with one region per half (seeded
untrained weights: the untrained recipe), and measures how close each half's colour histogram is to each style's
(``metrics.histogram_distance``: total variation between 8x8x8 RGB histograms, 0 = the same colours). Writes
a strip content | mask | warm | cool | result.

    python scripts/regions_example.py                    # -> docs/regions.jpg, the table on stdout
    python scripts/regions_example.py --size 64 --steps 40 --out /tmp/regions.jpg
    python scripts/regions_example.py --baseline         # the same without regions: both styles everywhere
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylize import stylize
from stylize.demo import demo_pair
from stylize.metrics import histogram_distance

WARM = ((200, 40, 30), (240, 130, 40), (250, 220, 170), (120, 20, 30))
COOL = ((30, 60, 170), (40, 150, 160), (235, 240, 250), (20, 30, 80))


def draw_style(palette, seed: int, size: int = 256) -> Image.Image:
    """Smooth random blobs (noise blurred at two scales), each pixel the palette colour of its value's quartile."""
    gen = torch.Generator().manual_seed(seed)
    field = sum(F.interpolate(torch.randn(1, 1, size // k, size // k, generator=gen), size=(size, size), mode="bicubic",
                              align_corners=False) * (k / 16) for k in (16, 4))[0, 0].numpy()
    levels = np.quantile(field, [0.25, 0.5, 0.75])
    index = np.digitize(field, levels)
    return Image.fromarray(np.array(palette, dtype=np.uint8)[index], "RGB")


def half_masks(content: Image.Image) -> tuple[Image.Image, Image.Image]:
    w, h = content.size
    left = np.zeros((h, w), np.uint8)
    left[:, : w // 2] = 255
    return Image.fromarray(left, "L"), Image.fromarray(255 - left, "L")


def distances(result: np.ndarray, warm: np.ndarray, cool: np.ndarray) -> dict[str, tuple[float, float]]:
    """half -> (distance to its own style, distance to the other), for the left (warm) and right (cool) halves."""
    w = result.shape[1]
    left, right = result[:, : w // 2], result[:, w - w // 2:]
    return {"left (warm)": (histogram_distance(left, warm), histogram_distance(left, cool)),
            "right (cool)": (histogram_distance(right, cool), histogram_distance(right, warm))}


def as_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255


def run(folder: Path, size: int, steps: int, baseline: bool = False, **overrides):
    """The example run in ``folder``: (result image, content, masks, styles, table of distances, the content's).
    ``baseline``: no regions, the two styles blended over the whole image."""
    content = Image.open(demo_pair()[0]).convert("RGB")
    left, right = half_masks(content)
    warm, cool = draw_style(WARM, 1), draw_style(COOL, 2)
    for name, img in (("left.png", left), ("right.png", right), ("warm.png", warm), ("cool.png", cool)):
        img.save(folder / name)
    if baseline:
        overrides["style"] = [str(folder / "warm.png"), str(folder / "cool.png")]
    else:
        overrides["regions"] = [f"{folder}/left.png={folder}/warm.png", f"{folder}/right.png={folder}/cool.png"]
    result = stylize(demo_pair()[0], write=False, size=size, steps=steps, weights="untrained", **overrides)
    out = result.image[0].permute(1, 2, 0).numpy().astype(np.float64)
    table = distances(out, as_array(warm), as_array(cool))
    before = distances(as_array(content.resize((out.shape[1], out.shape[0]))), as_array(warm), as_array(cool))
    return out, content, left, warm, cool, table, before


def strip(images: list[Image.Image], height: int) -> Image.Image:
    scaled = [im.convert("RGB").resize((round(im.width * height / im.height), height)) for im in images]
    sheet = Image.new("RGB", (sum(s.width for s in scaled) + 4 * (len(scaled) - 1), height), "white")
    x = 0
    for s in scaled:
        sheet.paste(s, (x, 0))
        x += s.width + 4
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "docs" / "regions.jpg")
    parser.add_argument("--baseline", action="store_true", help="no regions: print the table only, write nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out, content, left, warm, cool, table, before = run(Path(tmp), args.size, args.steps, args.baseline)
    print("| half | to its own style | to the other style | the content's, to its own |")
    print("|---|---|---|---|")
    for half, (own, other) in table.items():
        print(f"| {half} | {own:.3f} | {other:.3f} | {before[half][0]:.3f} |")
    if args.baseline:
        return
    result = Image.fromarray(np.round(out * 255).astype(np.uint8), "RGB")
    strip([content, left, warm, cool, result], 128).save(args.out, quality=85)
    print(args.out)


if __name__ == "__main__":
    main()
