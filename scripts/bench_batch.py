"""Throughput of `stylize batch` (issue 17): images per hour for workers x threads against serial `stylize run`
calls, Ray's overhead over the local pool, and a rerun that skips a finished batch. Every figure is the wall time
of a whole command (process start, imports, weights, setup included), interleaved, median of --reps.

    python scripts/bench_batch.py throughput --size 256 --steps 8 --reps 2
    python scripts/bench_batch.py ray --size 64 --steps 10 --reps 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import ImageOps

from stylize import images
from stylize.demo import demo_pair

STYLIZE = str(Path(sys.executable).with_name("stylize"))


def inputs(folder: Path, contents: int, styles: int) -> tuple[list[Path], list[Path]]:
    """The demo pair and mirrored / rotated copies of it (distinct bytes, same sizes)."""
    content, style = (images.load_image(p) for p in demo_pair())
    variants = [lambda im: im, ImageOps.mirror, ImageOps.flip, lambda im: im.rotate(180)]
    c = [folder / f"c{i}.png" for i in range(contents)]
    s = [folder / f"s{i}.png" for i in range(styles)]
    for i, p in enumerate(c):
        variants[i % 4](content).save(p)
    for i, p in enumerate(s):
        variants[i % 4](style).save(p)
    return c, s


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["throughput", "ray"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    common = ["--size", str(a.size), "--steps", str(a.steps), "--weights", "untrained", "--device", "cpu"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        if a.what == "throughput":
            contents, styles = inputs(tmp, 2, 2)
            jobs = len(contents) * len(styles)

            def serial(out: Path) -> float:
                return sum(timed([STYLIZE, "run", str(c), str(s), "-o", str(out / f"{c.stem}__{s.stem}.png"), "-q", *common])
                           for c in contents for s in styles)

            def pool(workers: int):
                return lambda out: timed([STYLIZE, "batch", *map(str, contents), *[x for s in styles for x in ("--style", str(s))],
                                          "-o", str(out), "--workers", str(workers), "-q", *common])
            cases = {"serial `stylize run` (1 process x 2 threads)": serial, "batch 1 worker x 2 threads": pool(1),
                     "batch 2 workers x 1 thread": pool(2)}
        else:
            contents, styles = inputs(tmp, 4, 2)
            jobs = len(contents) * len(styles)

            def batch(*extra: str):
                return lambda out: timed([STYLIZE, "batch", *map(str, contents), *[x for s in styles for x in ("--style", str(s))],
                                          "-o", str(out), "--workers", "2", "-q", *common, *extra])
            cases = {"local pool, 2 workers": batch(), "ray (local cluster started), 2 actors": batch("--backend", "ray")}
        seconds: dict[str, list[float]] = {k: [] for k in cases}
        for rep in range(a.reps):
            for name, case in cases.items():
                out = tmp / f"out-{rep}-{len(seconds[name])}-{abs(hash(name))}"
                seconds[name].append(case(out))
                print(f"rep {rep}: {name}: {seconds[name][-1]:.1f} s", flush=True)
        if a.what == "ray":  # a rerun of the finished batch: everything skipped
            done = max(tmp.glob("out-*"), key=lambda p: p.stat().st_mtime)
            rerun = [timed([STYLIZE, "batch", *map(str, contents), *[x for s in styles for x in ("--style", str(s))],
                            "-o", str(done), "-q", *common]) for _ in range(3)]
        print(f"\n{jobs} jobs at {a.size} px, {a.steps} steps, untrained weights, cpu; median of {a.reps}, interleaved\n")
        print("| case | seconds (median) | images / hour |\n|---|---|---|")
        base = None
        for name, values in seconds.items():
            med = statistics.median(values)
            base = base or med
            print(f"| {name} | {med:.1f} ({', '.join(f'{v:.1f}' for v in values)}) | {jobs / med * 3600:.0f} |")
        if a.what == "ray":
            print(f"\nray / local: {statistics.median(seconds[list(cases)[1]]) / base:.2f}x")
            print(f"rerun of the finished {jobs}-job batch (all skipped): {statistics.median(rerun):.2f} s "
                  f"(median of 3: {', '.join(f'{v:.2f}' for v in rerun)})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
