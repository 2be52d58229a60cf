"""Render one dlp-sim evaluation's trace (what ``--profile`` writes as ``<stem>.dlp-trace.json``) as a timeline PNG.

    PYTHONPATH=. python scripts/dlp_trace_png.py [--size 128] [--spec textbook] [--mode fp32] [--out docs/dlp-trace.png]

It runs the demo pair on dlp-sim with untrained weights for two evaluations, keeps the first one's trace,
writes the JSON beside the PNG, and draws the tracks (kernels, matrix unit, vector unit, DMA) with
matplotlib, as ui.perfetto.dev shows them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import stylize.dlp as dlp  # noqa: E402
from stylize import stylize  # noqa: E402
from stylize.dlp.profile import TRACKS, write_chrome_trace  # noqa: E402

COLORS = {"conv2d": "#4c72b0", "conv2d+relu": "#4c72b0", "conv2d.input_grad": "#8172b2", "gram_mse": "#c44e52",
          "gram_mse.backward": "#dd8452", "max_pool2d": "#55a868", "max_pool2d.backward": "#64b5cd"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--spec", default="textbook")
    ap.add_argument("--mode", default="fp32")
    ap.add_argument("--out", default="docs/dlp-trace.png")
    args = ap.parse_args()
    stopped = []

    def first_only(record):
        if not stopped:
            dlp.current().profile.stop_trace()
            stopped.append(record)

    result = stylize(weights="untrained", size=args.size, steps=2, write=False, device="dlp-sim", dlp_spec=args.spec,
                     dlp_mode=args.mode, on_step=first_only)
    out = Path(args.out)
    trace = json.loads(write_chrome_trace(result.profile, out.with_suffix(".json")).read_text())
    fig, ax = plt.subplots(figsize=(14, 3.6), dpi=110)
    for e in trace["traceEvents"]:
        if e["ph"] != "X":
            continue
        base = e["name"].removesuffix(" DMA")
        color = COLORS.get(base, "#937860" if e["tid"] != TRACKS.index("vector unit") else "#999999")
        ax.broken_barh([(e["ts"] / 1e3, max(e["dur"] / 1e3, 1e-4))], (len(TRACKS) - 1 - e["tid"] - 0.4, 0.8),
                       facecolors=color, edgecolors="white", linewidth=0.2)
    total = trace["otherData"]["sim_us"] / 1e3
    for e in trace["traceEvents"]:  # label the long kernels on the kernel track
        if e["ph"] == "X" and e["tid"] == 0 and e["dur"] / 1e3 > total / 40:
            ax.text((e["ts"] + e["dur"] / 2) / 1e3, len(TRACKS) - 1 + 0.5, e["name"], ha="center", va="bottom",
                    fontsize=6, rotation=30)
    ax.set_yticks(range(len(TRACKS)), list(reversed(TRACKS)))
    ax.set_xlim(0, total)
    ax.set_ylim(-0.6, len(TRACKS) + 0.6)
    ax.set_xlabel("simulated time (ms)")
    ax.set_title(f"dlp-sim, one evaluation: demo pair at {args.size} px, {trace['otherData']['spec']} spec, "
                 f"{trace['otherData']['mode']}, {trace['otherData']['kernels']} kernels, {total:.2f} ms", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    print(out, out.with_suffix(".json"))


if __name__ == "__main__":
    main()
