"""``python -m stylize`` is the ``stylize`` command."""

from . import main

main()
