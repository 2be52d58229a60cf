"""The ``stylize`` command line (Typer): :mod:`.app` holds the commands, :mod:`.tables` what they print.

The only package that imports typer and rich; everything it does is callable from Python.
"""

from .app import app

__all__ = ["app"]
