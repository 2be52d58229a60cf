"""Before/after of the untrained recipe: the seed's recipe vs configs/untrained.yaml, both on untrained weights.

For each content/style pair it runs ``-c default`` and ``-c untrained`` (``weights: untrained``), writes the
results, prints grayscale SSIM to the content and the colour-histogram distance to the style, and draws a
contact sheet (content | style | seed recipe | untrained recipe, one row per pair).

    python scripts/eval_untrained.py                            # demo pair + scikit-image's chelsea -> /tmp/untrained-eval
    python scripts/eval_untrained.py --demo-sheet docs/untrained.png   # also docs/untrained.png (repo images only)
    python scripts/eval_untrained.py --pair photo.jpg painting.jpg --size 256 --steps 200
    python scripts/eval_untrained.py --size 128 --variant sw10 style_weight=10 --variant max style_weight=10 pooling=max

Real photos come from packages' sample data (scikit-image's ``data`` folder, matplotlib's sample data) and are
never committed: only a sheet made from the repository's own procedural assets goes into docs/.
Needs scikit-image (``pip install -e '.[test]'``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from stylize import images, stylize
from stylize.config import parse_sets
from stylize.demo import demo_pair

RECIPES = {"seed": "default", "untrained": "untrained"}


def gray(a: np.ndarray) -> np.ndarray:
    return a @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as PIL's convert("L")


def histogram_distance(a: np.ndarray, b: np.ndarray, bins: int = 8) -> float:
    """Total-variation distance between joint RGB histograms (bins^3 cells) of two (H, W, 3) images: 0 .. 1."""
    ha, hb = (np.histogramdd(x.reshape(-1, 3), bins=bins, range=[(0, 1)] * 3)[0] for x in (a, b))
    return float(0.5 * np.abs(ha / ha.sum() - hb / hb.sum()).sum())


def _rgb(t) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy().astype(np.float64)  # (H, W, 3) in [0, 1]


def real_photo(out: Path) -> Path:
    """scikit-image's chelsea (a cat photo), saved under ``out`` (not in the repository)."""
    from skimage import data

    path = out / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


def evaluate(content: Path, style: Path, out: Path, size: int, steps: int,
             variants: dict[str, tuple[str, dict]] | None = None) -> dict:
    from skimage.metrics import structural_similarity

    c_img = images.to_tensor(images.resize_shorter(images.load_image(content), size))
    h, w = c_img.shape[-2:]
    s_img = images.to_tensor(images.resize_cover(images.load_image(style), w, h))
    c, s = _rgb(c_img), _rgb(s_img)
    row = {"content": str(content), "style": str(style), "size": [w, h], "steps": steps,
           "content_hist_to_style": histogram_distance(c, s), "runs": {}}
    runs = {name: (config, {}) for name, config in RECIPES.items()} | (variants or {})
    for name, (config, changes) in runs.items():
        path = out / f"{content.stem}__{style.stem}.{name}.png"
        t0 = time.perf_counter()
        result = stylize(content, style, path, config=config, weights="untrained", size=size, steps=steps, **changes)
        o = _rgb(result.image)
        row["runs"][name] = {"image": str(path), "seconds": round(time.perf_counter() - t0, 1),
                             "ssim_to_content": float(structural_similarity(gray(o), gray(c), data_range=1.0)),
                             "hist_to_style": histogram_distance(o, s), "status": result.status}
    return row


def contact_sheet(rows: list[dict], path: Path, height: int = 128) -> None:
    """One row per pair: content | style | seed recipe | untrained recipe, each ``height`` px tall, labelled."""
    tiles = []
    for row in rows:
        w, h = row["size"]
        srcs = [images.resize_shorter(images.load_image(row["content"]), min(w, h)),
                images.resize_cover(images.load_image(row["style"]), w, h),
                Image.open(row["runs"]["seed"]["image"]), Image.open(row["runs"]["untrained"]["image"])]
        tiles.append([im.convert("RGB").resize((round(height * w / h), height), Image.LANCZOS) for im in srcs])
    label_h = 14
    width = max(sum(t.width for t in r) for r in tiles)
    sheet = Image.new("RGB", (width, label_h + height * len(tiles)), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for label, tile in zip(("content", "style", "seed recipe", "untrained recipe"), tiles[0]):
        draw.text((x + 3, 1), label, fill="black")
        x += tile.width
    for i, r in enumerate(tiles):
        x = 0
        for tile in r:
            sheet.paste(tile, (x, label_h + i * height))
            x += tile.width
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/untrained-eval"), help="where results go")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--demo-only", action="store_true", help="only the bundled demo pair (repo images)")
    parser.add_argument("--pair", nargs=2, type=Path, action="append", metavar=("CONTENT", "STYLE"), help="more pairs")
    parser.add_argument("--sheet", type=Path, help="contact sheet path (default: OUT/contact_sheet.png)")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME [KEY=VALUE ...]",
                        help="an extra run: the untrained recipe with these keys changed, e.g. --variant max pooling=max")
    parser.add_argument("--demo-sheet", type=Path, help="also a sheet of the demo pair's row only (repo images)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    demo_content, demo_style = demo_pair()
    pairs = [(demo_content, demo_style)]
    if not args.demo_only:
        pairs.append((real_photo(args.out), demo_style))
    pairs += [tuple(p) for p in args.pair or []]
    variants = {name: ("untrained", parse_sets(changes)) for name, *changes in args.variant}
    rows = []
    for content, style in pairs:
        row = evaluate(content, style, args.out, args.size, args.steps, variants)
        rows.append(row)
        for name, r in row["runs"].items():
            print(f"{content.name} x {style.name} {name:>12}: SSIM to content {r['ssim_to_content']:.3f}, "
                  f"histogram distance to style {r['hist_to_style']:.3f} (content's: {row['content_hist_to_style']:.3f}), "
                  f"{r['seconds']} s")
    (args.out / "eval.json").write_text(json.dumps(rows, indent=1))
    sheet = args.sheet or args.out / "contact_sheet.png"
    contact_sheet(rows, sheet)
    print(f"contact sheet: {sheet} ({sheet.stat().st_size // 1024} KiB)")
    if args.demo_sheet:
        contact_sheet(rows[:1], args.demo_sheet)
        print(f"demo pair's sheet: {args.demo_sheet} ({args.demo_sheet.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
