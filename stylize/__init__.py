"""stylize: neural style transfer (Gatys et al.) faithful to the classic PyTorch recipe.

>>> from stylize import stylize
>>> result = stylize("content.jpg", "style.jpg", "out.png", steps=100)

The public names are imported on first use (PEP 562), so ``stylize --help`` and a Ctrl-C during start-up
do not wait for torch to load first.
"""

import importlib
import sys

__version__ = "0.1.0"

_PUBLIC = {"Config": "config", "build_config": "config", "StylizeError": "errors",
           "RunResult": "transfer", "run": "transfer", "stylize": "transfer"}
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
