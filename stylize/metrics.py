"""Measures of a stylization that are not the loss it optimized: colour and texture distances to the style.

Used to evaluate recipes (scripts/eval_untrained.py) and in the recipe's tests; structural similarity to the
content is scikit-image's ``structural_similarity`` on :func:`gray` images. Images are (H, W, 3) float arrays
in [0, 1] (:func:`as_array` turns a (1, 3, H, W) tensor into one).
"""

from __future__ import annotations

import numpy as np
import torch


def as_array(t: torch.Tensor) -> np.ndarray:
    """A (1, 3, H, W) image tensor as an (H, W, 3) float64 array."""
    return t[0].detach().cpu().permute(1, 2, 0).numpy().astype(np.float64)


def gray(a: np.ndarray) -> np.ndarray:
    return a @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as PIL's convert("L")


def histogram_distance(a: np.ndarray, b: np.ndarray, bins: int = 8) -> float:
    """Total-variation distance between joint RGB histograms (bins^3 cells) of two (H, W, 3) images: 0 .. 1."""
    ha, hb = (np.histogramdd(x.reshape(-1, 3), bins=bins, range=[(0, 1)] * 3)[0] for x in (a, b))
    return float(0.5 * np.abs(ha / ha.sum() - hb / hb.sum()).sum())


def lbp_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Texture: total-variation distance between the histograms of uniform local binary patterns (8 neighbours
    at radii 1 and 2, concatenated) of two (H, W, 3) images' luma, 0 .. 1. Not a Gram statistic, so it is not
    what the run optimizes."""
    from skimage.feature import local_binary_pattern

    def hist(x: np.ndarray) -> np.ndarray:
        g = np.round(gray(x) * 255).astype(np.uint8)
        hs = [np.bincount(local_binary_pattern(g, 8, r, "uniform").astype(int).ravel(), minlength=10) for r in (1, 2)]
        return np.concatenate([h / h.sum() for h in hs]) / 2

    return float(0.5 * np.abs(hist(a) - hist(b)).sum())
