"""The offline-quality evaluation set (issue 21): photos from scikit-image's bundled data, scenes with thin
structure and painted styles drawn here, and the metrics the recipe is judged by.

Nothing here is committed as an image: :func:`write_set` draws / copies everything into a folder at run time.
scikit-image's ``astronaut``, ``coffee``, ``chelsea`` and ``rocket`` ship inside its wheel (``skimage/data``),
so they load without a network. Used by ``scripts/eval_untrained.py --set``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # bundled in the scikit-image wheel: no download


# ---- contents with thin, high-contrast structure --------------------------------------------------------

def _sky(width: int, height: int, top, bottom) -> Image.Image:
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (np.array(top) * (1 - y) + np.array(bottom) * y).repeat(width, axis=1)
    return Image.fromarray(sky.astype(np.uint8), "RGB")


def draw_bridge(width: int = 512, height: int = 384) -> Image.Image:
    """A suspension bridge under a sky: two towers, sagging main cables, thin hangers, a deck, flat gray water
    (the pair issue 21 saw wrecked: towers faded, cables gone, the lower half flat)."""
    img = _sky(width, height, (95, 150, 215), (205, 225, 240))
    d = ImageDraw.Draw(img)
    deck_y, water_y = int(height * 0.62), int(height * 0.68)
    d.rectangle((0, water_y, width, height), fill=(120, 128, 135))  # water: large flat region
    for k in range(12):  # a few ripples
        y = water_y + 8 + k * 9
        d.line((20 + 37 * k % 200, y, 120 + 37 * k % 200, y), fill=(150, 158, 165), width=1)
    towers = (int(width * 0.28), int(width * 0.72))
    top = int(height * 0.14)
    for x in towers:  # towers with two cross beams
        d.rectangle((x - 9, top, x - 3, water_y), fill=(150, 45, 35))
        d.rectangle((x + 3, top, x + 9, water_y), fill=(150, 45, 35))
        for y in (top + 12, top + 70, deck_y - 30):
            d.rectangle((x - 9, y, x + 9, y + 6), fill=(150, 45, 35))
    # main cables: parabolas between the towers, halves down to the banks
    xs = np.arange(0, width)
    a, b = towers
    sag = np.where((xs >= a) & (xs <= b), top + 4 + (deck_y - 12 - top) * (1 - ((xs - (a + b) / 2) / ((b - a) / 2)) ** 2),
                   np.where(xs < a, top + 4 + (deck_y - 10 - top) * np.clip((a - xs) / a, 0, 1) ** 0.9,
                            top + 4 + (deck_y - 10 - top) * np.clip((xs - b) / (width - b), 0, 1) ** 0.9))
    d.line(list(zip(xs.tolist(), sag.tolist())), fill=(60, 30, 30), width=3)
    for x in range(8, width, 14):  # hangers: 1 px vertical lines
        if abs(x - a) > 10 and abs(x - b) > 10:
            d.line((x, sag[x], x, deck_y), fill=(70, 40, 40), width=1)
    d.rectangle((0, deck_y, width, deck_y + 7), fill=(70, 60, 60))  # deck
    return img.filter(ImageFilter.GaussianBlur(0.5))


def draw_arcade(width: int = 512, height: int = 384) -> Image.Image:
    """A lit tower behind an arcade at night: a dark sky, a bright tower with windows, a row of arches in front
    (the second pair issue 21 saw reduced to soft colour patches)."""
    img = _sky(width, height, (10, 14, 40), (35, 40, 75))
    d = ImageDraw.Draw(img)
    rng = np.random.default_rng(3)
    for x, y in rng.uniform((0, 0), (width, height * 0.45), (40, 2)):  # stars
        d.point((x, y), fill=(230, 230, 200))
    cx = width // 2
    d.rectangle((cx - 30, 40, cx + 30, height), fill=(235, 190, 110))  # tower
    d.polygon([(cx - 36, 42), (cx, 8), (cx + 36, 42)], fill=(210, 150, 80))
    for y in range(60, height - 120, 26):  # windows: dark slits
        for x in (cx - 18, cx + 8):
            d.rectangle((x, y, x + 9, y + 14), fill=(90, 50, 30))
    base = int(height * 0.55)  # the arcade: a wall with arches cut out, lit from below
    d.rectangle((0, base, width, height), fill=(180, 120, 70))
    span = 64
    for x0 in range(-10, width, span):
        d.rectangle((x0 + 8, base + 50, x0 + span - 8, height - 18), fill=(25, 20, 30))
        d.pieslice((x0 + 8, base + 20, x0 + span - 8, base + 80), 180, 360, fill=(25, 20, 30))
        d.line((x0 + 4, base, x0 + 4, height - 18), fill=(240, 200, 140), width=2)  # lit pillar edges
    d.line((0, base + 6, width, base + 6), fill=(240, 200, 140), width=2)
    d.rectangle((0, height - 18, width, height), fill=(120, 80, 50))
    return img.filter(ImageFilter.GaussianBlur(0.5))


def draw_wires(width: int = 512, height: int = 384) -> Image.Image:
    """Power lines across a pale sky over a dark field: thin sagging cables, poles and a fence."""
    img = _sky(width, height, (160, 190, 225), (235, 235, 225))
    d = ImageDraw.Draw(img)
    ground = int(height * 0.72)
    d.rectangle((0, ground, width, height), fill=(70, 85, 45))
    poles = [int(width * f) for f in (0.12, 0.5, 0.88)]
    for x in poles:
        d.rectangle((x - 3, int(height * 0.18), x + 3, ground + 10), fill=(60, 45, 35))
        d.rectangle((x - 28, int(height * 0.2), x + 28, int(height * 0.2) + 4), fill=(60, 45, 35))
    for off in (-24, -8, 8, 24):  # three spans per wire
        for a, b in zip([0, *poles], [*poles, width]):
            xs = np.linspace(a, b, 60)
            t = (xs - a) / max(b - a, 1)
            ys = height * 0.21 + 26 * 4 * t * (1 - t)
            d.line(list(zip((xs + 0 * off).tolist(), (ys + abs(off) * 0.3).tolist())), fill=(30, 30, 35), width=1)
    for x in range(0, width, 22):  # fence
        d.line((x, ground + 25, x, ground + 50), fill=(200, 190, 160), width=2)
    d.line((0, ground + 32, width, ground + 32), fill=(200, 190, 160), width=2)
    return img.filter(ImageFilter.GaussianBlur(0.5))


SCENES = {"bridge": draw_bridge, "arcade": draw_arcade, "wires": draw_wires}


# ---- styles ---------------------------------------------------------------------------------------------

def paint_strokes(size: int = 512, strokes: int = 3000, seed: int = 11) -> Image.Image:
    """Impressionist dabs: short straight strokes along a smooth flow field, warm palette over a violet ground."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (90, 60, 110))
    d = ImageDraw.Draw(img)
    palette = [(240, 180, 60), (220, 110, 50), (250, 220, 150), (150, 70, 120), (70, 120, 90), (200, 60, 60)]
    for _ in range(strokes):
        x, y = rng.uniform(0, size, 2)
        angle = math.sin(x / 70) + math.cos(y / 55)  # the flow field
        length = rng.uniform(8, 22)
        dx, dy = math.cos(angle) * length, math.sin(angle) * length
        d.line((x - dx, y - dy, x + dx, y + dy), fill=palette[rng.integers(len(palette))], width=int(rng.integers(3, 7)))
    return img.filter(ImageFilter.SMOOTH)


def paint_swirls(size: int = 512, strokes: int = 2400, seed: int = 5) -> Image.Image:
    """Curved strokes circling a few centres, greens and magentas (unlike the demo style's blues)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (25, 60, 45))
    d = ImageDraw.Draw(img)
    palette = [(40, 120, 80), (90, 170, 90), (200, 60, 140), (240, 150, 200), (20, 40, 30), (230, 230, 120)]
    centers = rng.uniform(0, size, (5, 2))
    for _ in range(strokes):
        x, y = rng.uniform(0, size, 2)
        cx, cy = centers[np.argmin(((centers - (x, y)) ** 2).sum(1))]
        angle, length = math.atan2(y - cy, x - cx) + math.pi / 2, rng.uniform(12, 30)
        pts = [(x + math.cos(angle + 0.7 * t) * length * t, y + math.sin(angle + 0.7 * t) * length * t)
               for t in np.linspace(0, 1, 6)]
        d.line(pts, fill=palette[rng.integers(len(palette))], width=int(rng.integers(3, 6)), joint="curve")
    return img.filter(ImageFilter.SMOOTH)


def paint_fields(size: int = 512, seed: int = 2) -> Image.Image:
    """Flat colour fields: random convex polygons in primaries and earth tones with dark outlines."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (230, 220, 190))
    d = ImageDraw.Draw(img)
    palette = [(200, 40, 30), (30, 60, 150), (240, 200, 40), (40, 40, 40), (160, 120, 70), (230, 220, 190)]
    for _ in range(60):
        cx, cy, r = *rng.uniform(0, size, 2), rng.uniform(30, 110)
        angles = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(3, 7))))
        pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]
        d.polygon(pts, fill=palette[rng.integers(len(palette))], outline=(20, 20, 20), width=3)
    return img


STYLES = {"strokes": paint_strokes, "swirls": paint_swirls, "fields": paint_fields}
# Each content once; each style at least twice; the thin-structure scenes with different styles.
PAIRS = [("bridge", "strokes"), ("arcade", "fields"), ("wires", "swirls"), ("astronaut", "swirls"),
         ("coffee", "fields"), ("chelsea", "strokes"), ("rocket", "fields")]


def write_set(out: Path, pairs: list[tuple[str, str]] = PAIRS) -> list[tuple[Path, Path]]:
    """Draw (or copy from scikit-image) every image the pairs name into ``out``; return the path pairs."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in {n for pair in pairs for n in pair}:
        path = paths[name] = out / f"{name}.png"
        if name in SCENES:
            SCENES[name]().save(path)
        elif name in STYLES:
            STYLES[name]().save(path)
        elif name in PHOTOS:
            from skimage import data

            Image.fromarray(getattr(data, name)()).convert("RGB").save(path)
        else:
            raise ValueError(f"unknown image {name!r}: one of {sorted([*SCENES, *STYLES, *PHOTOS])}")
    return [(paths[c], paths[s]) for c, s in pairs]
