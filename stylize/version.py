"""The package version (one place: the facade, the CLI and run.json read it here)."""

__version__ = "0.1.0"
