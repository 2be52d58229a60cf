"""stylize: neural style transfer (Gatys et al.) faithful to the classic PyTorch recipe.

>>> from stylize import stylize
>>> result = stylize("content.jpg", "style.jpg", "out.png", steps=100)

The public names are imported on first use (PEP 562), so ``stylize --help`` and a Ctrl-C during start-up
do not wait for torch to load first.
"""

import importlib
import os
import sys

from .version import __version__

# Large CPU tensors on 2 MB transparent huge pages (torch's own switch, read at its first large allocation).
# An evaluation allocates ~1.5 GB of fresh activations at 512 px; on 4 KB pages a quarter of the seed's CPU
# time went to page faults. Measured with `stylize bench --size 512`: ours 1.82 -> 1.27 s/eval, peak RSS
# 1707 -> 1627 MiB. Set THP_MEM_ALLOC_ENABLE=0 to opt out (it may not apply where torch was imported first).
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

_PUBLIC = {"Config": "config", "build_config": "config", "StylizeError": "errors",
           "RunResult": "results", "run": "transfer", "stylize": "transfer", "batch": "batches"}
__all__ = [*_PUBLIC, "main", "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'stylize' has no attribute '{name}'")


def main() -> None:
    """The ``stylize`` command. Ctrl-C while torch is still loading exits quietly with 130."""
    try:
        from .cli import app
    except KeyboardInterrupt:
        sys.exit(130)
    app()
