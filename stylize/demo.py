"""The bundled demo pair (drawn by scripts/make_assets.py) and the default output name of a run."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def demo_pair() -> tuple[Path, Path]:
    """The bundled demo images: (content, style)."""
    root = resources.files("stylize.assets")
    return Path(str(root / "content.jpg")), Path(str(root / "style.jpg"))


def default_output(content: Path, styles: list[Path]) -> Path:
    """``outputs/<content>__<style>[+<style>...].png``."""
    return Path("outputs") / f"{content.stem}__{'+'.join(s.stem for s in styles)}.png"
