"""Before/after of the untrained recipe, on untrained weights: per pair, grayscale SSIM to the content, the
colour-histogram distance to the style (and its ratio to the content's), a texture statistic (LBP histograms,
scripts/eval_set.py) and the time; a contact sheet (content | style | one column per recipe).

    python scripts/eval_untrained.py --set --size 256 --sheet docs/untrained-recipe.jpg   # issue 21's evaluation
    python scripts/eval_untrained.py --set --size 128 --recipes before-21 untrained --pairs bridge:strokes
    python scripts/eval_untrained.py                            # demo pair + scikit-image's chelsea, seed vs untrained
    python scripts/eval_untrained.py --demo-sheet docs/untrained.png   # also the README's sheet (repo images only)
    python scripts/eval_untrained.py --pair photo.jpg painting.jpg --size 256 --steps 200
    python scripts/eval_untrained.py --size 128 --variant sw10 style_weight=10 --variant max style_weight=10 pooling=max

Recipes: ``seed`` (-c default), ``untrained`` (configs/untrained.yaml as it is now), ``before-21`` (the untrained
recipe as it was before issue 21: deeper layers, no Laplacian term, no plateau rule), and ``--variant``s (the
untrained recipe with keys changed). Real photos come from packages' sample data (scikit-image's bundled
``data`` folder) and the set's other images are drawn by scripts/eval_set.py at run time; none is committed.
Needs scikit-image (``pip install -e '.[test]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_set  # noqa: E402

from stylize import images, stylize  # noqa: E402
from stylize.metrics import as_array, gray, histogram_distance, lbp_distance  # noqa: E402
from stylize.config import parse_sets  # noqa: E402
from stylize.demo import demo_pair  # noqa: E402

# The untrained recipe before issue 21 (configs/untrained.yaml then), spelled out so it stays comparable.
BEFORE_21 = {"style_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1"], "content_layers": ["relu4_2"],
             "style_weight": 100.0, "content_weight": 1.0, "laplacian_weight": 0.0, "plateau_tol": 0.0,
             "style_palette": False,
             "pooling": "avg", "init": "content", "normalize": "targets", "lbfgs_line_search": "strong_wolfe"}
RECIPES = {"seed": ("default", {}), "untrained": ("untrained", {}), "before-21": ("untrained", BEFORE_21)}


def real_photo(out: Path) -> Path:
    """scikit-image's chelsea (a cat photo), saved under ``out`` (not in the repository)."""
    from skimage import data

    path = out / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


def evaluate(content: Path, style: Path, out: Path, size: int, steps: int | None,
             runs: dict[str, tuple[str, dict]]) -> dict:
    from skimage.metrics import structural_similarity

    c_img = images.to_tensor(images.resize_shorter(images.load_image(content), size))
    h, w = c_img.shape[-2:]
    s_img = images.to_tensor(images.resize_cover(images.load_image(style), w, h))
    c, s = as_array(c_img), as_array(s_img)
    row = {"content": str(content), "style": str(style), "size": [w, h], "steps": steps,
           "content_hist_to_style": histogram_distance(c, s), "content_lbp_to_style": lbp_distance(c, s), "runs": {}}
    for name, (config, changes) in runs.items():
        path = out / f"{content.stem}__{style.stem}.{name}.{size}.png"
        t0 = time.perf_counter()
        kwargs = {"steps": steps} if steps else {}
        result = stylize(content, style, path, config=config, weights="untrained", size=size, **kwargs, **changes)
        o = as_array(result.image)
        hist, lbp = histogram_distance(o, s), lbp_distance(o, s)
        row["runs"][name] = {"image": str(path), "seconds": round(time.perf_counter() - t0, 1),
                             "evaluations": len(result.history), "status": result.status,
                             "stop_reason": result.stop_reason,
                             "ssim_to_content": float(structural_similarity(gray(o), gray(c), data_range=1.0)),
                             "hist_to_style": hist, "colour_ratio": hist / row["content_hist_to_style"],
                             "lbp_to_style": lbp, "texture_ratio": lbp / row["content_lbp_to_style"]}
    return row


def contact_sheet(rows: list[dict], path: Path, height: int = 128) -> None:
    """One row per pair: content | style | one column per run, each ``height`` px tall, labelled."""
    names = list(dict.fromkeys(n for row in rows for n in row["runs"]))  # every run, in first-seen order
    tiles = []
    for row in rows:
        w, h = row["size"]
        srcs = [images.resize_shorter(images.load_image(row["content"]), min(w, h)),
                images.resize_cover(images.load_image(row["style"]), w, h),
                *(Image.open(row["runs"][n]["image"]) if n in row["runs"] else Image.new("RGB", (w, h), "white")
                  for n in names)]
        tiles.append([im.convert("RGB").resize((round(height * w / h), height), Image.LANCZOS) for im in srcs])
    label_h = 14
    width = max(sum(t.width for t in r) for r in tiles)
    sheet = Image.new("RGB", (width, label_h + height * len(tiles)), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for label, tile in zip(("content", "style", *names), tiles[0]):
        draw.text((x + 3, 1), label, fill="black")
        x += tile.width
    for i, r in enumerate(tiles):
        x = 0
        for tile in r:
            sheet.paste(tile, (x, label_h + i * height))
            x += tile.width
    path.parent.mkdir(parents=True, exist_ok=True)
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    sheet.save(path, **({"quality": 80, "optimize": True} if jpeg else {"optimize": True}))


def table(rows: list[dict]) -> str:
    """A Markdown table: one line per pair and run."""
    lines = ["| pair | recipe | SSIM to content | colour ratio | texture ratio | evaluations | s | status |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        pair = f"{Path(row['content']).stem} × {Path(row['style']).stem}"
        for name, r in row["runs"].items():
            lines.append(f"| {pair} | {name} | {r['ssim_to_content']:.3f} | {r['colour_ratio']:.2f} | "
                         f"{r['texture_ratio']:.2f} | {r['evaluations']} | {r['seconds']:.0f} | {r['status']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/untrained-eval"), help="where results go")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, help="evaluations (default: each recipe's own)")
    parser.add_argument("--set", action="store_true", help="issue 21's evaluation set (scripts/eval_set.py)")
    parser.add_argument("--pairs", nargs="+", metavar="CONTENT:STYLE", help="only these pairs of the set")
    parser.add_argument("--recipes", nargs="*", choices=list(RECIPES), help="default: before-21 untrained with --set, "
                        "else seed untrained")
    parser.add_argument("--demo-only", action="store_true", help="only the bundled demo pair (repo images)")
    parser.add_argument("--pair", nargs=2, type=Path, action="append", metavar=("CONTENT", "STYLE"), help="more pairs")
    parser.add_argument("--sheet", type=Path, help="contact sheet path (default: OUT/contact_sheet.png; .jpg: JPEG)")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME [KEY=VALUE ...]",
                        help="an extra run: the untrained recipe with these keys changed, e.g. --variant max pooling=max")
    parser.add_argument("--demo-sheet", type=Path, help="also a sheet of the demo pair's row only (repo images)")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="EVAL_JSON",
                        help="run nothing: the table and sheet of earlier runs' eval.json files (e.g. split over processes)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        merged: dict[tuple, dict] = {}  # one row per pair and size: the runs of every file side by side
        for path in args.merge:
            for row in json.loads(path.read_text()):
                key = (Path(row["content"]).name, Path(row["style"]).name, tuple(row["size"]))
                merged.setdefault(key, {**row, "runs": {}})["runs"].update(row["runs"])
        rows = list(merged.values())
        print(table(rows))
        sheet = args.sheet or args.out / "contact_sheet.png"
        contact_sheet(rows, sheet)
        print(f"contact sheet: {sheet} ({sheet.stat().st_size // 1024} KiB)")
        return
    if args.set:
        chosen = [tuple(p.split(":")) for p in args.pairs] if args.pairs else eval_set.PAIRS
        pairs = eval_set.write_set(args.out, chosen)
    else:
        demo_content, demo_style = demo_pair()
        pairs = [(demo_content, demo_style)] + ([] if args.demo_only else [(real_photo(args.out), demo_style)])
    pairs += [tuple(p) for p in args.pair or []]
    names = args.recipes if args.recipes is not None else (["before-21", "untrained"] if args.set else ["seed", "untrained"])
    runs = {n: RECIPES[n] for n in names} | {n: ("untrained", parse_sets(c)) for n, *c in args.variant}
    rows = []
    for content, style in pairs:
        row = evaluate(content, style, args.out, args.size, args.steps, runs)
        rows.append(row)
        for name, r in row["runs"].items():
            print(f"{content.stem} x {style.stem} {name:>12}: SSIM {r['ssim_to_content']:.3f}, colour ratio "
                  f"{r['colour_ratio']:.2f}, texture ratio {r['texture_ratio']:.2f}, {r['evaluations']} evaluations, "
                  f"{r['seconds']} s, {r['status']}", flush=True)
        (args.out / "eval.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))
    sheet = args.sheet or args.out / "contact_sheet.png"
    contact_sheet(rows, sheet)
    print(f"contact sheet: {sheet} ({sheet.stat().st_size // 1024} KiB)")
    if args.demo_sheet:
        contact_sheet(rows[:1], args.demo_sheet)
        print(f"demo pair's sheet: {args.demo_sheet} ({args.demo_sheet.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
