"""docs/high-resolution-crop.jpg: a 100 % crop of a tiled run where four tiles meet, beside the same crop with the
tile borders drawn, so seams would show if there were any (the tiled gradient is the whole image's: there are none).

    python scripts/highres_crop.py [--size 768] [--steps 40] [--max-memory 1.5GB] [--out docs/high-resolution-crop.jpg]

The bundled demo pair (drawn by scripts/make_assets.py), seeded untrained weights, the seed's layers; the memory
bound makes the plan tile the final stage. Prints the plan and where the crop is.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from stylize import stylize
from stylize.images import to_pil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--max-memory", default="1.5GB")
    ap.add_argument("--crop", type=int, default=192, help="side of the 100 %% crop, px")
    ap.add_argument("--out", default="docs/high-resolution-crop.jpg")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = stylize(output=str(Path(tmp) / "out.png"), size=args.size, steps=args.steps, weights="untrained",
                    config="default", scales="none", init="content", max_memory=args.max_memory, write=False)
    stage = r.plan["stages"][-1]
    if stage["mode"] != "tiled":
        raise SystemExit(f"the plan did not tile ({stage}); give a smaller --max-memory")
    image = to_pil(r.image)
    tile, half = stage["tile"], args.crop // 2
    # centred on the tile corner nearest the picture's middle (the house), where four tiles meet
    cx, cy = (max(tile, round(v / tile) * tile) for v in (image.width / 2, image.height * 0.6))
    box = (cx - half, cy - half, cx + half, cy + half)
    crop = image.crop(box)
    marked = crop.copy()
    draw = ImageDraw.Draw(marked)
    draw.line([(half, 0), (half, args.crop)], fill=(255, 0, 255), width=1)
    draw.line([(0, half), (args.crop, half)], fill=(255, 0, 255), width=1)
    sheet = Image.new("RGB", (2 * args.crop + 8, args.crop), "white")
    sheet.paste(crop, (0, 0))
    sheet.paste(marked, (args.crop + 8, 0))
    sheet.save(args.out, quality=92)
    print(f"{image.width}x{image.height} px, {stage['tiles']} tiles of {tile} px + {stage['halo']} px halo, "
          f"{len(r.history)} evaluations; crop {box} (a tile corner at its centre) -> {args.out}")


if __name__ == "__main__":
    main()
