"""The artist controls of `stylize run`: style blends, style scale, colours, TV, init, pooling, intermediate images,
TensorBoard; each checked against a reference or a closed form."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from stylize import colors, images, losses, schedule
from stylize.cli import app
from stylize.config import build_config
from stylize.errors import StylizeError
from stylize.stages import init_image
from stylize.transfer import stylize

TINY = {"size": 32, "steps": 6, "device": "cpu", "weights": "untrained", "scales": "none"}


def test_blended_gram_is_the_normalized_weighted_sum():
    f1, f2 = torch.rand(1, 4, 5, 6), torch.rand(1, 4, 3, 7)  # different sizes: each Gram is a mean of its own
    loss = losses.StyleLoss([f1, f2], blend=[7.0, 3.0])
    expected = 0.7 * losses.gram_matrix(f1) + 0.3 * losses.gram_matrix(f2)
    torch.testing.assert_close(loss.target, expected)
    assert torch.equal(losses.StyleLoss([f1]).target, losses.gram_matrix(f1))
    with pytest.raises(ValueError, match="one non-negative blend weight per style image"):
        losses.blended_gram([f1, f2], [1.0])


def test_two_styles_blend_their_targets(pair, tmp_path, make_image):
    content, style = pair
    other = tmp_path / "other.png"
    make_image(40, 56, 7).save(other)
    result = stylize(content, [style, other], tmp_path / "b.png", **TINY, style_blend=[0.7, 0.3])
    info = json.loads(result.paths["json"].read_text())
    assert info["style"] == [str(style), str(other)] and info["config"]["style_blend"] == [0.7, 0.3]
    # The same run with only the first style (blend 1, 0) gives another image: the second style counts.
    only_first = stylize(content, [style, other], write=False, **TINY, style_blend=[1, 0])
    assert not torch.equal(result.image, only_first.image)
    alone = stylize(content, style, write=False, **TINY)
    assert torch.equal(only_first.image, alone.image)  # weight 0 contributes nothing, to the bit


def test_blend_weights_must_match_the_styles(pair):
    with pytest.raises(StylizeError, match="style_blend: 3 weights for 2 style images"):
        build_config(overrides={"style": [str(p) for p in pair], "style_blend": "0.5,0.3,0.2"})
    with pytest.raises(StylizeError, match="all 0"):
        build_config(overrides={"style": [str(p) for p in pair], "style_blend": [0, 0]})


def test_cli_takes_several_styles(pair, tmp_path, make_image):
    other = tmp_path / "other.png"
    make_image(40, 40, 5).save(other)
    out = tmp_path / "cli.png"
    result = CliRunner().invoke(app, ["run", str(pair[0]), str(pair[1]), str(other), "--style-blend", "2,1", "-o", str(out),
                                      "--size", "32", "--steps", "3", "--device", "cpu", "--weights", "untrained", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.with_suffix(".run.json").read_text())["config"]["style_blend"] == [2.0, 1.0]


def test_style_scale_sets_the_style_image_size(pair):
    content_pil, style_pil = (images.load_image(p) for p in pair)
    for scale, expected in ((1.0, (32, 40)), (0.5, (16, 20)), (1.5, (48, 60))):
        cfg = build_config(overrides={**TINY, "style_scale": scale})
        stage = schedule.plan(cfg, 40, 32, cut=9, fast=True)[-1]
        _, (style,) = schedule.stage_images(cfg, content_pil, [style_pil], stage, torch.device("cpu"))
        assert style.shape[-2:] == expected
    with pytest.raises(StylizeError, match="style_scale 0.1 makes the style image 4x3 px"):
        stylize(*pair, write=False, **{**TINY, "style_scale": 0.1})


def test_match_histogram_matches_the_style_to_the_content(pair):
    content_pil, style_pil = (images.load_image(p) for p in pair)
    cfg = build_config(overrides={**TINY, "match_histogram": True})
    stage = schedule.plan(cfg, 40, 32, cut=9, fast=True)[-1]
    content, (style,) = schedule.stage_images(cfg, content_pil, [style_pil], stage, torch.device("cpu"))
    plain = images.to_tensor(images.resize_cover(style_pil, 40, 32))
    torch.testing.assert_close(style, colors.match_histogram(plain, content))  # test_colors checks the function


def test_original_colors_keeps_the_contents_chroma(pair):
    result = stylize(*pair, write=False, **TINY, original_colors=True)
    plain = stylize(*pair, write=False, **TINY)
    content = images.to_tensor(images.resize_shorter(images.load_image(pair[0]), 32))
    ycc, ycc_plain, ycc_content = (colors.rgb_to_ycbcr(x) for x in (result.image, plain.image, content))
    inside = (result.image > 0).all(1) & (result.image < 1).all(1)  # where clamping to [0, 1] changed nothing
    torch.testing.assert_close(ycc[:, 0][inside], ycc_plain[:, 0][inside], atol=1e-5, rtol=0)  # the result's luminance
    torch.testing.assert_close(ycc[:, 1:].permute(1, 0, 2, 3)[:, inside], ycc_content[:, 1:].permute(1, 0, 2, 3)[:, inside],
                               atol=1e-5, rtol=0)  # the content's chroma


def test_tv_loss_closed_form_and_gradcheck():
    x = torch.rand(1, 3, 5, 7, dtype=torch.float64)
    n, c, h, w = x.shape
    dy = sum((x[0, k, i + 1, j] - x[0, k, i, j]) ** 2 for k in range(c) for i in range(h - 1) for j in range(w))
    dx = sum((x[0, k, i, j + 1] - x[0, k, i, j]) ** 2 for k in range(c) for i in range(h) for j in range(w - 1))
    torch.testing.assert_close(losses.tv_loss(x), dy / (c * (h - 1) * w) + dx / (c * h * (w - 1)))
    assert losses.tv_loss(torch.full((1, 3, 4, 4), 0.3)) == 0
    assert torch.autograd.gradcheck(losses.tv_loss, (x.requires_grad_(),))


def test_tv_weight_is_in_the_reported_loss_and_smooths(pair):
    smooth = stylize(*pair, write=False, **TINY, tv_weight=100.0)
    plain = stylize(*pair, write=False, **TINY)
    for r in smooth.history:
        assert r.tv > 0 and r.total == pytest.approx(r.content + r.style + r.tv, rel=1e-6)
    assert all(r.tv == 0 for r in plain.history)
    assert losses.tv_loss(smooth.image) < losses.tv_loss(plain.image)


def test_gray_init_starts_at_mid_gray(pair, monkeypatch):
    from stylize import optimize as optimize_module

    real, seen = optimize_module.evaluate, []

    def first_images(objective, image):
        seen.append(image.detach().clone())
        return real(objective, image)

    monkeypatch.setattr(optimize_module, "evaluate", first_images)
    stylize(*pair, write=False, **TINY, init="gray")
    assert seen and torch.equal(seen[0], torch.full_like(seen[0], 0.5))  # the image the run evaluates first
    cfg = build_config(overrides={**TINY, "init": "gray"})
    assert torch.equal(init_image(cfg, torch.zeros(1, 3, 4, 5)), torch.full((1, 3, 4, 5), 0.5))


def test_avg_pooling_changes_the_model(pair):
    avg = stylize(*pair, write=False, **TINY, pooling="avg")
    assert not torch.equal(avg.image, stylize(*pair, write=False, **TINY).image)


def test_save_every_writes_intermediate_images(pair, tmp_path):
    result = stylize(*pair, tmp_path / "w.png", **{**TINY, "save_every": 2})
    saved = sorted(p.name for p in tmp_path.glob("w.step*.png"))
    assert saved == ["w.step0002.png", "w.step0004.png", "w.step0006.png"]
    assert images.load_image(tmp_path / "w.step0004.png").size == (40, 32)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
    assert result.status == "completed"


def test_tensorboard_logs_every_loss_term_and_images(pair, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = stylize(*pair, tmp_path / "t.png", **{**TINY, "tv_weight": 1.0, "save_every": 3,
                                                    "tensorboard": str(tmp_path / "tb")})
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0}).Reload()
    for name in ("total", "style", "content", "tv"):
        values = [e.value for e in events.Scalars(f"loss/{name}")]
        assert values == pytest.approx([getattr(r, name) for r in result.history], rel=1e-6)
    assert [e.step for e in events.Images("image")] == [3, 6]
    assert events.Graph() is not None
