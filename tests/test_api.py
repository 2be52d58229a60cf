import json

import pytest
import torch

import stylize as pkg
from stylize import StylizeError, build_config, images, stylize
from stylize.objective import GraphObjective, LossWeights

TINY = {"size": 32, "steps": 8, "device": "cpu", "weights": "untrained", "scales": "none"}


def test_python_api_returns_the_image_and_history(pair):
    result = stylize(*pair, write=False, **TINY)
    assert result.image.shape == (1, 3, 32, 40) and result.image.device.type == "cpu"
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert [r.step for r in result.history] == list(range(1, 9))
    assert result.paths == {} and result.config.size == 32 and result.weights.kind == "untrained"


def test_same_seed_same_image_different_seed_different_image(pair):
    a, b = stylize(*pair, write=False, **TINY), stylize(*pair, write=False, **TINY)
    c = stylize(*pair, write=False, seed=1, **TINY)
    assert torch.equal(a.image, b.image)
    assert not torch.equal(a.image, c.image)


def test_config_object_keeps_its_images(pair, tmp_path):
    base = build_config(overrides={**TINY, "content": str(pair[0]), "style": str(pair[1]), "output": str(tmp_path / "b.png")})
    result = stylize(config=base, steps=2)
    assert result.paths["image"] == tmp_path / "b.png" and result.config.content == str(pair[0])


@pytest.mark.slow
def test_config_object_file_and_overrides(pair, tmp_path):
    base = build_config("gatys", overrides=TINY)
    result = stylize(*pair, tmp_path / "o.png", config=base, steps=3)
    assert result.config.content_layers == {"conv4_2": 1.0} and len(result.history) == 3
    assert json.load(open(result.paths["json"]))["config"]["steps"] == 3
    assert stylize(*pair, config="gatys", write=False, **TINY).config.style_layers == base.style_layers
    with pytest.raises(StylizeError, match="Did you mean 'steps'"):
        stylize(*pair, stepz=3)


def test_on_step_sees_every_evaluation_and_keyboard_interrupt_keeps_the_result(pair, tmp_path):
    seen = []

    def on_step(record):
        seen.append(record.step)
        if record.step == 5:
            raise KeyboardInterrupt

    result = stylize(*pair, tmp_path / "i.png", on_step=on_step, **{**TINY, "steps": 50})
    assert seen == [1, 2, 3, 4, 5] and result.interrupted
    info = json.load(open(result.paths["json"]))
    assert info["status"] == "interrupted" and info["steps_run"] == 5
    assert result.paths["image"].exists() and result.paths["plot"].exists()


def test_init_content_and_image_file(pair, tmp_path, make_image):
    content, style = pair
    first = stylize(content, style, write=False, init="content", **{**TINY, "steps": 2})
    assert first.history[0].content == 0  # evaluated at the content image itself
    assert first.history[1].content > 0
    # An init file equal to the content gives content loss 0 at step 1; another image does not.
    same = stylize(content, style, write=False, init=str(content), **{**TINY, "steps": 2})
    assert same.history[0].content == 0
    init = tmp_path / "init.png"
    make_image(100, 100, 9).save(init)
    other = stylize(content, style, write=False, init=str(init), **TINY)
    assert other.image.shape == (1, 3, 32, 40) and other.history[0].content > 0
    assert other.history[0].total != stylize(content, style, write=False, **TINY).history[0].total


def test_style_only_and_content_only_runs(pair):
    assert stylize(*pair, write=False, content_layers=[], **TINY).history[-1].content == 0
    assert stylize(*pair, write=False, style_layers=[], **TINY).history[-1].style == 0


@pytest.mark.slow
def test_loss_decreases_over_a_short_run(pair):
    result = stylize(*pair, write=False, **{**TINY, "steps": 30})
    assert min(r.total for r in result.history[-5:]) < 0.5 * result.history[0].total


def test_wide_style_is_cropped_before_scaling(pair, tmp_path, make_image):
    # 4000x2 px would be scaled to ~20000x40 before cropping if resized first; cropping first keeps it small.
    wide = tmp_path / "wide.png"
    make_image(4000, 2, 3).save(wide)
    out = images.resize_cover(images.load_image(wide), 40, 32)
    assert out.size == (40, 32)
    assert stylize(pair[0], wide, write=False, **TINY).image.shape == (1, 3, 32, 40)


class _NaNAfter(torch.nn.Module):
    """A loss module whose loss is finite for `calls` evaluations, then NaN; keeps every input it saw."""

    def __init__(self, calls):
        super().__init__()
        self.calls, self.seen, self.loss = calls, [], torch.zeros(())

    def forward(self, x):
        self.seen.append(x.detach().clone())
        finite = len(self.seen) <= self.calls
        self.loss = (((x - 0.3) ** 2).mean() + 3 * (x**4).mean()) * (1.0 if finite else float("nan"))
        return x


def test_non_finite_loss_stops_and_keeps_the_last_finite_image():
    from stylize.optimize import optimize
    fake = _NaNAfter(calls=4)
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    result = optimize(GraphObjective(fake, [fake], [], LossWeights(1.0, 1.0)), image, steps=20)
    assert result.status == "diverged" and len(result.history) == 4
    assert torch.equal(result.image, fake.seen[3].clamp(0, 1))  # the 4th (last finite) image, not the 5th
    assert not torch.equal(fake.seen[3], fake.seen[4])


def test_diverged_run_is_recorded(pair, tmp_path):
    result = stylize(*pair, tmp_path / "d.png", **{**TINY, "style_weight": 1e300, "steps": 20})
    info = json.load(open(result.paths["json"]))
    assert info["status"] == "diverged" and info["steps_run"] == 0 and torch.isfinite(result.image).all()
    assert result.paths["plot"].exists()  # an empty plot, so no stale plot of an earlier run stays beside it


def test_content_init_with_content_loss_only_converges_at_once(pair):
    result = stylize(*pair, write=False, **{**TINY, "init": "content", "style_layers": [], "steps": 10})
    assert result.status == "converged" and len(result.history) == 1 and result.history[0].total == 0


def test_max_iter_one_is_not_mistaken_for_convergence(pair):
    result = stylize(*pair, write=False, **{**TINY, "lbfgs_max_iter": 1, "steps": 6})
    assert result.status == "completed" and len(result.history) == 6


def test_size_hint_never_below_the_minimum(pair, tmp_path, make_image, monkeypatch):
    from stylize import devices
    monkeypatch.setattr(devices, "available_memory", lambda device: 1)  # nothing fits
    with pytest.raises(StylizeError, match="Free some memory first"):
        stylize(*pair, write=False, **TINY)


def test_public_names():
    assert pkg.__all__ and all(hasattr(pkg, name) for name in pkg.__all__)
