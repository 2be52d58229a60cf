"""A run's logs: ``<stem>.losses.csv``, ``<stem>.run.json`` and ``<stem>.loss.png``."""

from __future__ import annotations

import csv
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .optimize import StepRecord
from .outputs import check_name_lengths

CSV_FIELDS = ("step", "size", "seconds", "content", "style", "tv", "total")


# Every other file a run may write beside its image, for the length check (a step file has 4+ digits).
OTHER_SUFFIXES = (".dlp-profile.json", ".ckpt", ".step0000")


def log_paths(output: Path) -> dict[str, Path]:
    """The log files that sit beside an output image. A stem too long for the longest of the names a run may
    write there is refused here, before any work (the image's name can fit where ``.losses.csv``'s does not)."""
    stem = output.with_suffix("")
    paths = {"csv": Path(f"{stem}.losses.csv"), "json": Path(f"{stem}.run.json"), "plot": Path(f"{stem}.loss.png")}
    check_name_lengths([output, *paths.values(), *(Path(f"{stem}{s}{output.suffix}") for s in OTHER_SUFFIXES)])
    return paths


def write_csv(history: Sequence[StepRecord], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for r in history:
            writer.writerow([r.step, r.size, f"{r.seconds:.4f}", repr(r.content), repr(r.style), repr(r.tv), repr(r.total)])


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def versions() -> dict[str, Any]:
    """Library versions and the CPU's kernels (``cpu``: ATen's ISA, oneDNN's, whether its int8 conv saturates):
    the same run gives other numbers on another ISA."""
    from importlib.metadata import version

    import PIL
    import torch

    from . import cpu
    from .version import __version__

    return {"stylize": __version__, "torch": torch.__version__, "torchvision": version("torchvision"),
            "pillow": PIL.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu": cpu.report()}


def printable(text: str) -> str:
    """``text`` as valid Unicode: a file name that is not UTF-8 reaches Python with its bytes as lone surrogates
    (``surrogateescape``), which matplotlib, JSON readers and terminals reject; show them as U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "replace").decode("utf-8")


def plot_losses(history: Sequence[StepRecord], path: Path, title: str = "") -> None:
    """Loss curves (content, style, total) against step, log scale, as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only; never open a window
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    steps = [r.step for r in history]
    for name in ("total", "style", "content", "tv"):
        values = [getattr(r, name) for r in history]
        if any(v > 0 for v in values):
            ax.plot(steps, values, label=name, linewidth=1.5 if name == "total" else 1.0)
    has_data = bool(ax.lines)
    for before, after in zip(history, history[1:]):
        if after.size != before.size:  # a coarse-to-fine run: mark where each size starts
            ax.axvline(after.step - 0.5, color="grey", linewidth=0.8, linestyle=":")
            ax.text(after.step, 1.0, f" {after.size} px", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    if has_data:
        ax.set_yscale("log")
    ax.set_xlabel("step (closure evaluation)")
    ax.set_ylabel("weighted loss")
    ax.set_title(printable(title or "stylize losses") + ("" if history else " (no step with a finite loss)"), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if has_data:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
