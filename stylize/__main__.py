"""``python -m stylize`` is the ``stylize`` command."""

from . import main

if __name__ == "__main__":  # not when a spawned worker (stylize bench) re-imports this module
    main()
