"""Optical flow between video frames, the backward warp, and where the flow can be trusted (Ruder et al. 2016).

The flow is OpenCV's DIS (dense inverse search): no downloaded weights, milliseconds per frame where Ruder et
al.'s DeepFlow took 20 s to 3 minutes. Conventions (pixels, ``(H, W, 2)`` arrays of ``(dx, dy)``):

* ``flow(a, b)[y, x]`` is where the pixel ``(x, y)`` of ``a`` moved to in ``b``: ``a(p) ~ b(p + flow(p))``;
* :func:`warp` ``(image, f)`` samples ``image`` at ``p + f(p)``: ``warp(prev, flow(cur, prev)) ~ cur``;
* :func:`consistency` is Ruder et al.'s forward-backward check plus their motion-boundary test: 1 where the
  warped previous frame may be held to, 0 where the pixel was disoccluded, at a motion boundary, or left the
  image.

Needs ``opencv-python-headless`` (the ``video`` extra), imported on first use.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import StylizeError

MISSING_EXTRA = ("stylize video needs the video extra (PyAV and OpenCV): pip install 'stylize[video]' "
                 "(or: pip install av opencv-python-headless).")


def _cv2():
    try:
        import cv2
    except ImportError:
        raise StylizeError(MISSING_EXTRA) from None
    return cv2


def gray(image: torch.Tensor) -> np.ndarray:
    """A (1, 3, H, W) image in [0, 1] as the 8-bit luma (BT.601) the flow is computed on."""
    r, g, b = image[0].detach().cpu().clamp(0, 1)
    return (0.299 * r + 0.587 * g + 0.114 * b).mul(255).round().byte().numpy()


def flow(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Dense flow from ``a`` to ``b`` ((1, 3, H, W) in [0, 1]): an (H, W, 2) float32 array of (dx, dy) in pixels."""
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(gray(a), gray(b), None)


def _grid(f: torch.Tensor) -> torch.Tensor:
    """grid_sample's normalized grid of the points ``p + f(p)`` (f: (H, W, 2) pixels), align_corners=True."""
    h, w = f.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=f.dtype), torch.arange(w, dtype=f.dtype), indexing="ij")
    x = (xs + f[..., 0]) * (2 / max(w - 1, 1)) - 1
    y = (ys + f[..., 1]) * (2 / max(h - 1, 1)) - 1
    return torch.stack([x, y], dim=-1).unsqueeze(0)  # (1, H, W, 2)


def warp(image: torch.Tensor, f: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Backward warp: ``image`` (N, C, H, W) sampled bilinearly at ``p + f(p)`` (points outside: the border)."""
    f = torch.as_tensor(f, dtype=image.dtype)
    grid = _grid(f).to(image.device).expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def consistency(forward: np.ndarray, backward: np.ndarray, boundaries: bool = True) -> torch.Tensor:
    """Where the previous frame, warped to this one, can be trusted: a (1, 1, H, W) float mask of 0 and 1.

    Args:
        forward: ``flow(prev, cur)``; backward: ``flow(cur, prev)``, both (H, W, 2).
        boundaries: also drop motion boundaries (Ruder et al.'s second test).

    Ruder et al. 2016, eq. (3): with ``w = backward(p)`` and ``w~ = forward(p + w)`` (the forward flow warped
    to this frame), the pixel is disoccluded when ``|w + w~|^2 > 0.01 (|w|^2 + |w~|^2) + 0.5``; a motion
    boundary when ``|grad w_x|^2 + |grad w_y|^2 > 0.01 |w|^2 + 0.002``. A pixel whose match lies outside the
    previous frame is dropped too.
    """
    w = torch.from_numpy(np.ascontiguousarray(backward, dtype=np.float32))  # (H, W, 2)
    fw = torch.from_numpy(np.ascontiguousarray(forward, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    w_t = warp(fw, w)[0].permute(1, 2, 0)  # forward(p + w(p)), (H, W, 2)
    bad = (w + w_t).square().sum(-1) > 0.01 * (w.square().sum(-1) + w_t.square().sum(-1)) + 0.5
    if boundaries:
        gy = torch.zeros_like(w)
        gx = torch.zeros_like(w)
        gx[:, :-1] = w[:, 1:] - w[:, :-1]  # forward differences, per flow component
        gy[:-1] = w[1:] - w[:-1]
        bad |= (gx.square() + gy.square()).sum(-1) > 0.01 * w.square().sum(-1) + 0.002
    h, wd = w.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=w.dtype), torch.arange(wd, dtype=w.dtype), indexing="ij")
    x, y = xs + w[..., 0], ys + w[..., 1]
    bad |= (x < 0) | (x > wd - 1) | (y < 0) | (y > h - 1)
    return (~bad).to(torch.float32)[None, None]


def warp_error(current: torch.Tensor, previous: torch.Tensor, backward: np.ndarray, mask: torch.Tensor) -> float:
    """The temporal warp error: the mean ``|current - warp(previous)|`` over the consistent pixels (and channels)."""
    diff = (current - warp(previous, backward)).abs() * mask
    n = mask.sum() * current.shape[1]
    return float(diff.sum() / n) if n > 0 else 0.0
