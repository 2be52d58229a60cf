"""Bundled demo images (drawn by scripts/make_assets.py); installed as the package stylize.assets."""
