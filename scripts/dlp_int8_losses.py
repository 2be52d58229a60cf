"""Issue 19's loss table: fp32 / fp16 / int8 on dlp-sim, 100 evaluations at 128 px, two pairs.

    PYTHONPATH=. python scripts/dlp_int8_losses.py [--size 128] [--steps 100] [--recipe untrained] [--out DIR]
        [--modes fp32,fp16,int8,fp32@mlu270] [--pairs demo,procedural] [--set plateau_tol=0 ...]

For each pair and mode: run, write the image (PNG), then score that image twice with one evaluation from it
(``init`` = the PNG, ``steps=1``): in fp32 (its true loss) and in the run's own mode (the loss that mode
reports for the same image). Prints: final fp32 loss, its ratio to fp32's, and reported / true.
The procedural pair is made here (no files needed); the demo pair is the bundled one.
"""

from __future__ import annotations

import argparse
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from stylize import configs, stylize
from stylize.images import to_pil


def procedural(path: Path, width: int, height: int, seed: int) -> Path:
    """A smooth structured picture: sines, a disc and stripes, different per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    rgb = np.stack([0.5 + 0.5 * np.sin(rng.uniform(4, 12) * (x if i % 2 else y) + rng.uniform(0, 6.28)) for i in range(3)], -1)
    rgb[(x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.05] = rng.uniform(0, 1, 3)
    rgb[(np.floor(x * 16) % 2 == 0) & (y > 0.7)] *= 0.4
    Image.fromarray((rgb * 255).astype(np.uint8), "RGB").save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--recipe", default="untrained", help="a bundled config (untrained, default, gatys)")
    ap.add_argument("--modes", default="fp32,fp16,int8")
    ap.add_argument("--pairs", default="demo,procedural")
    ap.add_argument("--out", default=None, help="keep the images here (default: a temp dir)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config key for the runs (e.g. plateau_tol=0: all --steps evaluations)")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    config = str(resources.files(configs) / f"{args.recipe}.yaml")
    pairs = {"demo": (None, None),
             "procedural": (procedural(out / "p-content.png", 160, 128, 1), procedural(out / "p-style.png", 128, 128, 2))}
    sets = {k: yaml.safe_load(v) for k, _, v in (kv.partition("=") for kv in args.set)}
    common = dict(config=config, weights="untrained", size=args.size, write=False, device="dlp-sim", **sets)
    rows = []
    for name in args.pairs.split(","):
        content, style = pairs[name]
        for mode in args.modes.split(","):
            # "fp32@mlu270": fp32 on another spec (other tiles, other summation order): the run-to-run spread
            # that last-bit differences alone give LBFGS.
            mode, _, spec = mode.partition("@")
            r = stylize(content, style, steps=args.steps, dlp_mode=mode, dlp_spec=spec or "textbook", **common)
            png = out / f"{name}-{mode}{'-' + spec if spec else ''}.png"
            to_pil(r.image).save(png)
            true = stylize(content, style, steps=1, init=str(png), dlp_mode="fp32", **common).history[0].total
            told = stylize(content, style, steps=1, init=str(png), dlp_mode=mode, **common).history[0].total
            label = mode + ("@" + spec if spec else "")
            rows.append((name, label, len(r.history), r.history[-1].total, true, told))
            base = next((t for n, m, *_, t, _ in rows if n == name and m == "fp32"), true)
            print(f"{name:<11}{label:<13} evals {len(r.history):>4}  last reported {r.history[-1].total:10.5f}  "
                  f"final loss in fp32 {true:10.5f} ({true / base:5.3f}x fp32's)  reported for that image {told:10.5f} "
                  f"({told / true:5.3f}x)", flush=True)


if __name__ == "__main__":
    main()
