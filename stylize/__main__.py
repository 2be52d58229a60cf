"""``python -m stylize`` is the ``stylize`` command."""

from .cli import main

main()
