"""The tiled evaluator (stylize/tiled.py) against the whole image: same loss, same image gradient (float64)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from stylize import features, regions
from stylize.config import Config, resolve_recipe
from stylize.objective import FusedObjective, PlainObjective
from stylize.tiled import TiledObjective, halo, tiles

PAPER = {"style_layers": {n: 1.0 for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")},
         "content_layers": {"relu4_2": 1.0}}


def _both(cfg: Config, h: int, w: int, tile: int, fast: bool, n_styles: int = 1, dtype=torch.float64, margin=None,
          regions_of=None):
    """(whole loss, tiled loss, whole gradient, tiled gradient, tiled objective) at one random image;
    ``regions_of(h, w, styles)``: the stage's regions, for both."""
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    net = features.init_untrained(features.vgg19_features(cut, cfg.pooling)).to(dtype)
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, h, w, generator=gen, dtype=dtype)
    styles = [torch.rand(1, 3, h + 8 * i, w - 8 * i, generator=gen, dtype=dtype) for i in range(n_styles)]
    image = torch.rand(1, 3, h, w, generator=gen, dtype=dtype)
    regs = regions_of(h, w, styles) if regions_of else None
    whole = (FusedObjective if fast else PlainObjective).build(net, content, styles, cfg, regions=regs)
    x1 = image.clone().requires_grad_()
    t1 = whole.evaluate(x1)
    whole.backward(t1)
    tiled = TiledObjective.build(net, content, styles, cfg, tile=tile, fast=fast, regions=regs)
    if margin is not None:
        tiled.margin = margin
    x2 = image.clone().requires_grad_()
    t2 = tiled.evaluate(x2)
    tiled.backward(t2)
    return float(t1.total.detach()), float(t2.total.detach()), x1.grad, x2.grad, tiled


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


CASES = {
    "seed-max": (Config(), 96, 128, 32, False, 1),
    "seed-max-fused": (Config(), 96, 128, 32, True, 1),
    "seed-avg": (Config(pooling="avg"), 96, 128, 32, False, 1),
    "untrained-2-styles": (None, 96, 128, 32, False, 2),
    "untrained-blend-fused": ("blend", 96, 112, 32, True, 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tiled_loss_and_gradient_equal_the_whole_image(case):
    cfg, h, w, tile, fast, n = CASES[case]
    if cfg in (None, "blend"):  # the untrained recipe: avg pooling, normalize: targets, shallow layers
        cfg = resolve_recipe(Config(), untrained_fallback=True)
        assert cfg.normalize == "targets" and cfg.pooling == "avg"
        if n == 2:
            cfg = dataclasses.replace(cfg, style_blend=[1.0, 3.0] if case.endswith("fused") else None)
    l1, l2, g1, g2, tiled = _both(cfg, h, w, tile, fast, n)
    assert tiled.n_tiles >= 6  # several tiles, in both directions
    assert abs(l2 - l1) / abs(l1) < 1e-10
    assert _rel(g2, g1) < 1e-10


def _three_regions(h: int, w: int, styles, hard: bool = False, erode: int = 1) -> regions.StageRegions:
    """Three regions over the image (soft, or a hard partition), two styles, region 2 with a style map; weights
    1, 2 and 0.5."""
    gen = torch.Generator().manual_seed(2)
    dtype = styles[0].dtype
    if hard:
        label = torch.zeros(h, w, dtype=torch.long)
        label[:, w // 3:] = 1
        label[h // 2:, 2 * w // 3:] = 2
        masks = torch.stack([(label == r) for r in range(3)]).to(dtype).unsqueeze(1)
    else:
        masks = torch.rand(3, 1, h, w, generator=gen, dtype=dtype)
    style_map = torch.rand(1, 1, *styles[1].shape[-2:], generator=gen, dtype=dtype)
    return regions.StageRegions(masks, [0, 1, 1], [None, None, style_map], [1.0, 2.0, 0.5], erode)


@pytest.mark.parametrize("fast, hard", [(False, False), (True, True)])
def test_regions_tiled_equal_the_whole_image(fast, hard):
    """Guided Grams (regional styles) summed over tiles: soft masks with erosion and a style map (plain), a hard
    partition (fused), on the untrained recipe's normalized losses."""
    cfg = resolve_recipe(Config(), untrained_fallback=True)
    l1, l2, g1, g2, tiled = _both(cfg, 96, 128, 32, fast, 2,
                                  regions_of=lambda h, w, styles: _three_regions(h, w, styles, hard=hard))
    assert tiled.n_tiles >= 6
    assert abs(l2 - l1) / abs(l1) < 1e-10
    assert _rel(g2, g1) < 1e-10


def test_style_coarse_and_fine_tiled_equal_the_whole_image():
    """Scale control: each tap's one-hot blend of the two style images is kept when the targets are tiled."""
    cfg = dataclasses.replace(Config(), style_coarse="coarse.png", style_fine="fine.png")
    l1, l2, g1, g2, tiled = _both(cfg, 96, 128, 32, True, 2)
    assert abs(l2 - l1) / abs(l1) < 1e-10
    assert _rel(g2, g1) < 1e-10


def test_paper_layers_tv_and_laplacian_within_1e_5():
    """The paper's layers (cut at relu5_1: a 96 px halo), with the image-level terms; float32 (float64 deep
    convs take minutes here)."""
    cfg = dataclasses.replace(Config(), **PAPER, tv_weight=1.0, laplacian_weight=1.0)
    l1, l2, g1, g2, tiled = _both(cfg, 160, 128, 64, False, dtype=torch.float32)
    assert tiled.n_tiles == 6 and tiled.margin == 96
    assert abs(l2 - l1) / abs(l1) < 1e-5
    assert _rel(g2, g1) < 1e-5


def test_float32_fast_path_within_1e_5():
    """NNPACK's Winograd convs (float32 only) round with the tile's offset: still far inside 1e-5."""
    cfg = resolve_recipe(Config(), untrained_fallback=True)
    l1, l2, g1, g2, tiled = _both(cfg, 128, 160, 64, True, dtype=torch.float32)
    assert tiled.n_tiles >= 4
    assert abs(l2 - l1) / abs(l1) < 1e-5
    assert _rel(g2, g1) < 1e-5


def test_a_halo_short_of_the_receptive_field_is_not_exact():
    """The test above can fail: a halo short of the receptive field (conv3_1's: 12 px) gives a different gradient."""
    *_, g1, g2, _ = _both(Config(), 96, 128, 32, False, margin=8)
    assert _rel(g2, g1) > 1e-6


def test_tiles_partition_the_image_on_the_pooling_grid():
    grid = tiles(100, 70, 32, 16, 4)
    covered = torch.zeros(100, 70, dtype=torch.int64)
    for t in grid:
        covered[t.y0:t.y1, t.x0:t.x1] += 1
        assert t.y0 % 4 == 0 and t.x0 % 4 == 0 and t.ty0 % 4 == 0 and t.tx0 % 4 == 0
        assert t.ty0 == max(0, t.y0 - 16) and t.ty1 == min(100, t.y1 + 16)
    assert bool((covered == 1).all())
    assert halo(features.layer("relu3_1").index) == 16  # 2 + 1 + 4 + 2 + 4 = 13 px, up to the 4 px grid
    assert halo(features.layer("relu5_1").index) == 96  # 70 + 15 = 85 px, up to the 16 px grid
