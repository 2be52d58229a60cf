"""Draw the bundled demo pair: ``assets/content.jpg`` and ``assets/style.jpg``.

Both images are made here from code (no photographs or paintings of anyone else), so the
repository can ship them. Run ``python scripts/make_assets.py`` to redraw them; the output is
deterministic for a given Pillow/NumPy version.

- content: a small landscape (sky, sun, hills, a house, trees): clear edges and large shapes,
  so it is easy to see whether a stylization kept the content.
- style: a swirly "starry night"-like texture of short curved brush strokes in blues and yellows,
  so the style's colours and stroke texture are easy to recognise in a result.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def draw_content(width: int = 512, height: int = 384) -> Image.Image:
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    top, horizon = np.array([70, 130, 210]), np.array([190, 220, 245])
    sky = (top * (1 - y) + horizon * y).repeat(width, axis=1).astype(np.uint8)
    img = Image.fromarray(sky, "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse((380, 40, 450, 110), fill=(255, 214, 90))  # sun
    d.ellipse((-120, 230, 330, 520), fill=(86, 150, 70))  # far hill
    d.ellipse((200, 250, 700, 560), fill=(60, 125, 55))  # near hill
    d.rectangle((0, 330, width, height), fill=(70, 140, 60))  # meadow
    # house: walls, roof, door, windows
    d.rectangle((150, 220, 290, 320), fill=(200, 80, 60))
    d.polygon([(140, 222), (220, 160), (300, 222)], fill=(110, 50, 40))
    d.rectangle((205, 265, 235, 320), fill=(80, 50, 30))
    for x0 in (165, 250):
        d.rectangle((x0, 240, x0 + 25, 262), fill=(240, 240, 200))
    # trees
    for cx, cy, r in ((70, 260, 38), (340, 250, 30), (455, 275, 42)):
        d.rectangle((cx - 6, cy + r - 10, cx + 6, cy + r + 45), fill=(90, 60, 35))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(35, 100, 45))
    return img.filter(ImageFilter.GaussianBlur(0.8))


def draw_style(size: int = 512, strokes: int = 2600, seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (20, 40, 90))
    d = ImageDraw.Draw(img)
    palette = [(20, 50, 120), (40, 80, 170), (70, 120, 200), (110, 160, 220), (235, 205, 80), (250, 235, 150), (15, 30, 70)]
    weights = np.array([3, 4, 4, 2, 2, 1, 2], dtype=float)
    centers = rng.uniform(0, size, size=(6, 2))
    for _ in range(strokes):
        x, y = rng.uniform(0, size, 2)
        # strokes follow circles around the nearest swirl centre
        cx, cy = centers[np.argmin(((centers - (x, y)) ** 2).sum(1))]
        angle = math.atan2(y - cy, x - cx) + math.pi / 2
        length, width = rng.uniform(10, 28), int(rng.integers(3, 7))
        colour = palette[rng.choice(len(palette), p=weights / weights.sum())]
        pts = []
        for t in np.linspace(0, 1, 6):
            a = angle + 0.6 * t * (length / 28)
            pts.append((x + math.cos(a) * length * t, y + math.sin(a) * length * t))
        d.line(pts, fill=colour, width=width, joint="curve")
    for cx, cy in centers[:3]:  # a few glowing "stars"
        r = rng.uniform(12, 22)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(250, 230, 120), width=4)
    return img.filter(ImageFilter.SMOOTH)


def main() -> None:
    ASSETS.mkdir(exist_ok=True)
    draw_content().save(ASSETS / "content.jpg", quality=92)
    draw_style().save(ASSETS / "style.jpg", quality=92)
    print(f"wrote {ASSETS / 'content.jpg'} and {ASSETS / 'style.jpg'}")


if __name__ == "__main__":
    main()
