"""Measure `stylize video` on the procedural clip (scripts/make_clip.py): the temporal warp error and seconds per
frame, coherent (warped init + temporal term) against the same frames stylized independently with the same
settings; write the markdown table and a strip of frames (docs/video-strip.jpg) for docs/video.md.

    python scripts/video_report.py [--size 256] [--frames 6] [--first-steps 60] [--steps 20] [--out /tmp/video-report]

Equivalent to `stylize video clip.mp4 STYLE -o OUT --report` and the same with `--independent`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_clip  # noqa: E402

from stylize import video  # noqa: E402
from stylize.config import build_config  # noqa: E402
from stylize.demo import demo_pair  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--first-steps", type=int, default=24)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--config", default="untrained")
    parser.add_argument("--set", action="append", default=["plateau_tol=0"])
    parser.add_argument("--out", default="/tmp/video-report")
    parser.add_argument("--strip", default=str(Path(__file__).resolve().parent.parent / "docs" / "video-strip.jpg"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = out / "clip.mp4"
    make_clip.write(str(clip), n=args.frames, fps=12, width=args.size, height=args.size)
    cfg = build_config(args.config, args.set, {"size": args.size, "weights": "untrained", "device": "cpu",
                                               "style": [str(demo_pair()[1])]})
    rows = {}
    for mode in ("coherent", "independent"):
        t0 = time.perf_counter()
        vcfg = video.VideoConfig(str(clip), str(out / mode), first_steps=args.first_steps, steps=args.steps,
                                 independent=mode == "independent", report=True)
        result = video.stylize_video(vcfg, cfg, on_frame=lambda f, n: print(mode, f, flush=True))
        s = result.summary()
        rows[mode] = s
        print(mode, s, f"{time.perf_counter() - t0:.0f} s", flush=True)
    c, i = rows["coherent"], rows["independent"]
    print(f"\n| mode | frame 1 (s) | later frames, median (s) | later / frame 1 | temporal warp error (mean) |")
    print("|---|---|---|---|---|")
    for mode, s in rows.items():
        print(f"| {mode} | {s['first_frame_s']:.1f} | {s['later_frame_s_median']:.1f} | "
              f"{s['later_frame_s_median'] / s['first_frame_s']:.2f} | {s['warp_error_mean']:.4f} |")
    print(f"\nwarp error ratio independent / coherent: {i['warp_error_mean'] / c['warp_error_mean']:.1f}x; "
          f"flow (both directions) median {c['flow_s_median'] * 1000:.0f} ms per frame")
    strip(clip, out, args.frames, Path(args.strip))


def strip(clip: Path, out: Path, n: int, path: Path, shown: int = 4, height: int = 96) -> None:
    """Rows: the input, independent, coherent; columns: frames 2..shown+1 (frame 1 is the same in both)."""
    from stylize import frames

    source = frames.open_clip(clip)
    inputs = [img for _, img in frames.read(source, list(range(1, min(n, shown + 1))))]
    ks = range(1, 1 + len(inputs))
    rows = [inputs, [Image.open(out / "independent" / f"frame{k + 1:06d}.png") for k in ks],
            [Image.open(out / "coherent" / f"frame{k + 1:06d}.png") for k in ks]]
    width = round(inputs[0].width * height / inputs[0].height)
    sheet = Image.new("RGB", (width * len(inputs) + 4 * (len(inputs) - 1), height * 3 + 8), "white")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            sheet.paste(img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR), (c * (width + 4), r * (height + 4)))
    sheet.save(path, quality=85)
    print(path)


if __name__ == "__main__":
    main()
