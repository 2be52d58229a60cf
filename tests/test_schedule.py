"""Coarse to fine: the stages `scales` plans, their sizes for any aspect, and a multi-scale run's records."""

from __future__ import annotations

import pytest

from stylize import schedule
from stylize.config import build_config
from stylize.errors import StylizeError
from stylize.transfer import stylize

TINY = {"size": 32, "steps": 6, "device": "cpu", "weights": "untrained", "scales": "none"}


@pytest.mark.parametrize("scales, size, steps, expected", [
    ("none", 512, 300, [(512, 300)]),
    ("auto", 512, 300, [(256, 50), (512, 300)]),
    ("auto", 512, 60, [(256, 10), (512, 60)]),
    ("auto", 100, 300, [(100, 300)]),  # half size below 64 px: no coarse stage
    ("auto", 768, 300, [(384, 50), (768, 300)]),  # the largest size with steps at the final size
    # above 768 px: the same two stages at the base (size halved to <= 768), then doublings of equal cost
    ("auto", 1536, 300, [(384, 50), (768, 300), (1536, 75)]),
    ("auto", 3072, 300, [(384, 50), (768, 300), (1536, 75), (3072, 19)]),
    ("auto", 6144, 300, [(384, 50), (768, 300), (1536, 75), (3072, 19), (6144, 10)]),  # at least 10
    ("auto", 1000, 120, [(250, 20), (500, 120), (1000, 30)]),
    ("ladder", 512, 100, [(128, 100), (181, 100), (256, 100), (362, 100), (512, 100)]),
    ("ladder", 180, 100, [(127, 100), (180, 100)][1:]),  # 180 / sqrt(2) = 127 < 128: no smaller size
    ("256,512", 512, 100, [(256, 100), (512, 100)]),
    ("128:30,256:20", 512, 100, [(128, 30), (256, 20), (512, 100)]),
])
def test_schedule(scales, size, steps, expected):
    cfg = build_config(overrides={"scales": scales, "size": size, "steps": steps})
    stages = schedule.plan(cfg, 4 * size // 3, size, cut=9, fast=True)
    assert [(s.size, s.steps) for s in stages] == expected
    assert all(s.height == s.size and s.width == int(s.size * 4 / 3) for s in stages)
    if scales == "auto":  # the seed's graph (exact) and dlp-sim run one size, `steps` evaluations
        assert [(s.size, s.steps) for s in schedule.plan(cfg, 4 * size // 3, size, cut=9, fast=False)] == [(size, steps)]


@pytest.mark.parametrize("scales, message", [
    ("512,256", "sizes must increase"),
    ("256,1024", "1024 is larger than size 512"),
    ("256,512:10", "the last size, 512, is the final size"),
    ("big", "expected a whole number"),
])
def test_bad_scales(scales, message):
    with pytest.raises(StylizeError, match=message):
        cfg = build_config(overrides={"scales": scales, "size": 512, "steps": 100})
        schedule.plan(cfg, 600, 512, cut=9, fast=True)


def test_multiscale_run_records_every_size(pair, tmp_path):
    result = stylize(*pair, tmp_path / "m.png", **{**TINY, "scales": "24:4,32", "size": None})
    assert [r.size for r in result.history] == [24] * 4 + [32] * 6
    assert [r.step for r in result.history] == list(range(1, 11))
    assert result.image.shape[-2:] == (32, 40) and result.config.size == 32  # the last listed size is the size
    rows = result.paths["csv"].read_text().splitlines()
    assert rows[0] == "step,size,seconds,content,style,tv,total" and rows[1].startswith("1,24,")


@pytest.mark.slow
def test_stage_sizes_match_the_resized_content_for_any_aspect(tmp_path, make_image):
    content = tmp_path / "c43.png"
    make_image(512, 384, 3).save(content)  # 4:3, where a stage's own rounding can differ from the image's by 1 px
    result = stylize(content, None, tmp_path / "a.png", **{**TINY, "size": 64, "steps": 3, "scales": "48,64"})
    assert [r.size for r in result.history] == [48] * 3 + [64] * 3 and result.image.shape[-2:] == (64, 85)
