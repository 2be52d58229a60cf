"""Host time per closure evaluation, cpu path vs dlp-sim: interleaved runs, medians, ratio.

    PYTHONPATH=. python scripts/dlp_speed.py --size 256 --steps 6 --rounds 3 [--spec textbook] [--mode fp32]

(``stylize bench`` is the general tool; this script measures issue 3's speed target only.)
"""

from __future__ import annotations

import argparse
import statistics

import torch

from stylize import stylize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--spec", default="textbook")
    ap.add_argument("--mode", default="fp32")
    args = ap.parse_args()
    per_eval: dict[str, list[float]] = {"cpu": [], "dlp-sim": []}
    for r in range(args.rounds):
        for device in per_eval:  # interleaved, so both see the same machine load
            out = stylize(device=device, weights="untrained", size=args.size, steps=args.steps, write=False,
                          dlp_spec=args.spec, dlp_mode=args.mode)
            times = [b.seconds - a.seconds for a, b in zip(out.history, out.history[1:])]
            per_eval[device] += times
            print(f"round {r} {device}: median {statistics.median(times):.3f} s/eval", flush=True)
    cpu, dev = (statistics.median(per_eval[d]) for d in ("cpu", "dlp-sim"))
    print(f"size {args.size}, {torch.get_num_threads()} threads, spec {args.spec}, mode {args.mode}: "
          f"cpu {cpu:.3f} s/eval, dlp-sim {dev:.3f} s/eval, ratio {dev / cpu:.2f}")


if __name__ == "__main__":
    main()
