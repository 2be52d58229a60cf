"""stylize video: optical flow, warp and consistency mask on a synthetic clip; the temporal loss; frames in and
out; resuming; the command (frame count, fps, audio)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylize import flow, losses
from stylize.objective import LossWeights, Terms

pytest.importorskip("cv2")

H = W = 96
SIDE, X0, Y0 = 32, 20, 24  # the square at frame 0
DX, DY = 4, 2  # its motion per frame, in pixels


def texture(h: int, w: int, seed: int) -> torch.Tensor:
    """Smooth random colour texture (bicubic upsampled noise): something optical flow can lock onto."""
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, h // 4, w // 4, generator=g), size=(h, w), mode="bicubic",
                         align_corners=False).clamp(0, 1)


def frame(t: int) -> torch.Tensor:
    """A textured square moving by (DX, DY) per frame over a static, darker textured background."""
    image = texture(H, W, 1) * 0.5
    x, y = X0 + DX * t, Y0 + DY * t
    image[..., y:y + SIDE, x:x + SIDE] = texture(SIDE, SIDE, 2)
    return image


INNER = (slice(Y0 + DY + 4, Y0 + DY + SIDE - 4), slice(X0 + DX + 4, X0 + DX + SIDE - 4))  # the square at t=1, eroded


@pytest.fixture(scope="module")
def flows():
    a, b = frame(0), frame(1)
    return a, b, flow.flow(a, b), flow.flow(b, a)


def test_the_flow_recovers_the_shift_inside_the_square(flows):
    _, _, forward, backward = flows
    inside = backward[INNER]  # at frame 1, pointing back to frame 0
    assert np.median(inside[..., 0]) == pytest.approx(-DX, abs=0.1)
    assert np.median(inside[..., 1]) == pytest.approx(-DY, abs=0.1)
    assert np.abs(inside - [-DX, -DY]).max() < 0.5
    ys, xs = INNER[0].start - DY, INNER[1].start - DX  # the same pixels at frame 0, pointing forward
    out = forward[ys:ys + SIDE - 8, xs:xs + SIDE - 8]
    assert np.median(out[..., 0]) == pytest.approx(DX, abs=0.1) and np.median(out[..., 1]) == pytest.approx(DY, abs=0.1)


def test_the_warp_reproduces_the_next_frame_inside_the_square(flows):
    a, b, _, backward = flows
    warped = flow.warp(a, backward)
    err = (warped - b)[..., INNER[0], INNER[1]].abs()
    assert err.mean() < 0.01 and err.max() < 0.1
    # an exact integer flow is an exact shift (the reference: slicing)
    exact = np.zeros((H, W, 2), np.float32)
    exact[..., 0], exact[..., 1] = -DX, -DY
    shifted = flow.warp(a, exact)
    assert torch.allclose(shifted[..., DY:, DX:], a[..., :H - DY, :W - DX], atol=1e-5)


def test_the_mask_marks_the_disoccluded_pixels_inconsistent(flows):
    _, _, forward, backward = flows
    mask = flow.consistency(forward, backward)[0, 0].bool()
    disoccluded = torch.zeros(H, W, dtype=torch.bool)
    disoccluded[Y0:Y0 + SIDE, X0:X0 + SIDE] = True  # behind the square at frame 0 ...
    disoccluded[Y0 + DY:Y0 + DY + SIDE, X0 + DX:X0 + DX + SIDE] = False  # ... and not under it at frame 1
    assert disoccluded.sum() == SIDE * SIDE - (SIDE - DX) * (SIDE - DY)
    assert (~mask[disoccluded]).float().mean() > 0.75  # most of the revealed strip is dropped
    assert mask[INNER].all()  # the square's inside is trusted
    far = torch.ones(H, W, dtype=torch.bool)
    far[Y0 - 8:Y0 + DY + SIDE + 8, X0 - 8:X0 + DX + SIDE + 8] = False
    assert mask[far].float().mean() > 0.95  # so is the static background away from the square


def test_the_mask_drops_pixels_whose_match_left_the_frame():
    still = np.zeros((8, 8, 2), np.float32)
    backward = still.copy()
    backward[..., 0] = -3.0  # everything came from 3 px to the left: columns 0..2 came from outside
    forward = still.copy()
    forward[..., 0] = 3.0
    mask = flow.consistency(forward, backward, boundaries=False)[0, 0]
    assert mask[:, :3].sum() == 0 and mask[:, 3:].all()


def test_the_temporal_loss_is_the_masked_mean_of_squares():
    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(1, 3, 5, 6, generator=g), torch.rand(1, 3, 5, 6, generator=g)
    mask = (torch.rand(1, 1, 5, 6, generator=g) > 0.4).float()
    expected = sum(float((x[0, c] - w[0, c])[mask[0, 0].bool()].square().sum()) for c in range(3)) / (3 * mask.sum())
    assert losses.temporal_loss(x, w, mask).item() == pytest.approx(float(expected), rel=1e-6)
    assert losses.temporal_loss(x, w, torch.zeros_like(mask)).item() == 0.0
    assert losses.temporal_loss(x, x, mask).item() == 0.0


def test_the_temporal_loss_gradient():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.rand(1, 3, 4, 5, generator=g, dtype=torch.float64)
    mask = (torch.rand(1, 1, 4, 5, generator=g) > 0.5).double()
    assert torch.autograd.gradcheck(lambda image: losses.temporal_loss(image, w, mask), (x,))
    x.grad = None
    losses.temporal_loss(x, w, mask).backward()  # closed form: 2 mask (x - w) / (C * sum(mask))
    assert torch.allclose(x.grad, 2 * mask * (x.detach() - w) / (3 * mask.sum()))


def test_the_temporal_term_is_in_the_objective_total():
    from stylize.config import Config

    assert LossWeights.of(Config(temporal_weight=7.0)).temporal == 7.0
    terms = Terms(torch.tensor(1.0), torch.tensor(2.0), 0.5, torch.tensor(0.25))
    assert float(terms.total) == pytest.approx(3.75)
