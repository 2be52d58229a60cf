"""One stylization per artist control, on the demo pair, as a contact sheet (docs/controls.jpg).

Each control runs on the bundled demo images at a small size with seeded untrained weights (the untrained
recipe: no ImageNet weights on our machines), and the sheet shows them side by side with a label. The second
style image for the blend is drawn here (``make_assets.draw_style`` with another seed, its colour channels
rotated), so everything in the sheet is made by this repository.

    python scripts/controls_gallery.py                      # -> docs/controls.jpg (128 px, 150 steps)
    python scripts/controls_gallery.py --size 256 --steps 300 --out /tmp/controls.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
from make_assets import draw_style  # noqa: E402

from stylize import stylize  # noqa: E402
from stylize.demo import demo_pair  # noqa: E402


def controls(second_style: Path) -> dict[str, dict]:
    """label -> the run's keyword arguments (on top of the recipe)."""
    return {
        "untrained recipe": {},
        "blend 0.7 / 0.3": {"style": "BLEND", "style_blend": [0.7, 0.3]},
        "style scale 0.5": {"style_scale": 0.5},
        "original colors": {"original_colors": True},
        "match histogram": {"match_histogram": True},
        "tv weight 50": {"tv_weight": 50.0},
        "init gray": {"init": "gray"},
        "adam lr 0.02": {"optimizer": "adam", "lr": 0.02},
        "max pooling": {"pooling": "max"},
        "scales 64:100,128": {"scales": "64:100,128"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path("docs/controls.jpg"))
    args = parser.parse_args()
    content, style = demo_pair()
    work = Path(tempfile.mkdtemp(prefix="stylize-controls-"))
    second = work / "style2.png"
    r, g, b = draw_style(seed=11).split()
    Image.merge("RGB", (b, r, g)).save(second)  # other strokes, other colours (the demo style's channels rotated)
    tiles = [("content", Image.open(content)), ("style", Image.open(style)), ("style 2 (blend)", Image.open(second))]
    for label, extra in controls(second).items():
        styles = [str(style), str(second)] if extra.get("style") == "BLEND" else str(style)
        extra = {k: v for k, v in extra.items() if k != "style"}
        result = stylize(content, styles, work / f"{label.replace(' ', '_').replace('/', '')}.png", weights="untrained",
                         recipe="untrained", size=args.size, steps=args.steps, device="cpu", **extra)
        print(f"{label:18s} loss {result.output_losses.total if result.output_losses else result.history[-1].total:.4g}"
              f"  {result.paths['image']}")
        tiles.append((label, Image.open(result.paths["image"])))
    side, pad, cols = 160, 18, 5
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * side, rows * (side + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(tiles):
        img = img.convert("RGB")
        img.thumbnail((side, side))
        x, y = (i % cols) * side, (i // cols) * (side + pad)
        sheet.paste(img, (x + (side - img.width) // 2, y + pad + (side - img.height) // 2))
        draw.text((x + 4, y + 3), label, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, **({"quality": 88} if args.out.suffix.lower() in (".jpg", ".jpeg") else {}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
