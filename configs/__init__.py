"""Bundled YAML configs; installed as the package stylize.configs so `-c gatys` finds them anywhere."""
