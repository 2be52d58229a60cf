"""The artist and researcher controls of `stylize run`: each checked against a reference or a closed form."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from typer.testing import CliRunner

from stylize import checkpoint, colors, losses, schedule, transfer
from stylize.cli import app
from stylize.config import build_config
from stylize.errors import StylizeError
from stylize.optimize import BLOWUP_PATIENCE, optimize
from stylize.transfer import stylize

TINY = {"size": 32, "steps": 6, "device": "cpu", "weights": "untrained", "scales": "none"}


# ---- several style images ------------------------------------------------------------------------------------

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


# ---- style scale, colours -----------------------------------------------------------------------------------

def test_style_scale_sets_the_style_image_size(pair):
    content_pil, style_pil = (transfer.images.load_image(p) for p in pair)
    for scale, expected in ((1.0, (32, 40)), (0.5, (16, 20)), (1.5, (48, 60))):
        cfg = build_config(overrides={**TINY, "style_scale": scale})
        stage = schedule.plan(cfg, 40, 32, cut=9, fast=True)[-1]
        _, (style,) = schedule.stage_images(cfg, content_pil, [style_pil], stage, torch.device("cpu"))
        assert style.shape[-2:] == expected
    with pytest.raises(StylizeError, match="style_scale 0.1 makes the style image 4x3 px"):
        stylize(*pair, write=False, **{**TINY, "style_scale": 0.1})


def test_match_histogram_matches_the_style_to_the_content(pair):
    content_pil, style_pil = (transfer.images.load_image(p) for p in pair)
    cfg = build_config(overrides={**TINY, "match_histogram": True})
    stage = schedule.plan(cfg, 40, 32, cut=9, fast=True)[-1]
    content, (style,) = schedule.stage_images(cfg, content_pil, [style_pil], stage, torch.device("cpu"))
    plain = transfer.images.to_tensor(transfer.images.resize_cover(style_pil, 40, 32))
    torch.testing.assert_close(style, colors.match_histogram(plain, content))  # test_colors checks the function


def test_original_colors_keeps_the_contents_chroma(pair):
    result = stylize(*pair, write=False, **TINY, original_colors=True)
    plain = stylize(*pair, write=False, **TINY)
    content = transfer.images.to_tensor(transfer.images.resize_shorter(transfer.images.load_image(pair[0]), 32))
    ycc, ycc_plain, ycc_content = (colors.rgb_to_ycbcr(x) for x in (result.image, plain.image, content))
    inside = (result.image > 0).all(1) & (result.image < 1).all(1)  # where clamping to [0, 1] changed nothing
    torch.testing.assert_close(ycc[:, 0][inside], ycc_plain[:, 0][inside], atol=1e-5, rtol=0)  # the result's luminance
    torch.testing.assert_close(ycc[:, 1:].permute(1, 0, 2, 3)[:, inside], ycc_content[:, 1:].permute(1, 0, 2, 3)[:, inside],
                               atol=1e-5, rtol=0)  # the content's chroma


# ---- TV loss, init, optimizer ---------------------------------------------------------------------------------

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


def test_gray_init_starts_at_mid_gray(pair):
    seen = []
    stylize(*pair, write=False, **TINY, init="gray", on_step=lambda r: seen.append(r))
    cfg = build_config(overrides={**TINY, "init": "gray"})
    assert torch.equal(transfer._init_image(cfg, torch.zeros(1, 3, 4, 5)), torch.full((1, 3, 4, 5), 0.5))
    assert seen and seen[0].tv == 0


def test_adam_lowers_the_loss_in_exactly_the_steps(pair):
    result = stylize(*pair, write=False, **{**TINY, "steps": 25, "optimizer": "adam", "lr": 0.05})
    totals = [r.total for r in result.history]
    assert len(totals) == 25 and result.output_losses.total < 0.5 * totals[0]
    # the lbfgs_* keys (here the untrained recipe's line search) are LBFGS's: Adam runs the same without them
    recipe = stylize(*pair, write=False, **{**TINY, "steps": 5, "optimizer": "adam", "lr": 0.05,
                                            "lbfgs_line_search": "strong_wolfe"})
    assert [r.total for r in recipe.history] == totals[:5]


def test_avg_pooling_changes_the_model(pair):
    avg = stylize(*pair, write=False, **TINY, pooling="avg")
    assert not torch.equal(avg.image, stylize(*pair, write=False, **TINY).image)


# ---- coarse to fine -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scales, size, steps, expected", [
    ("none", 512, 300, [(512, 300)]),
    ("auto", 512, 300, [(256, 50), (512, 300)]),
    ("auto", 512, 60, [(256, 10), (512, 60)]),
    ("auto", 100, 300, [(100, 300)]),  # half size below 64 px: no coarse stage
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
    if scales == "auto":  # the seed's graph (exact) and dlp-sim run one size
        assert len(schedule.plan(cfg, 4 * size // 3, size, cut=9, fast=False)) == 1


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


# ---- watching a run -------------------------------------------------------------------------------------------

def test_save_every_writes_intermediate_images(pair, tmp_path):
    result = stylize(*pair, tmp_path / "w.png", **{**TINY, "save_every": 2})
    saved = sorted(p.name for p in tmp_path.glob("w.step*.png"))
    assert saved == ["w.step0002.png", "w.step0004.png", "w.step0006.png"]
    assert transfer.images.load_image(tmp_path / "w.step0004.png").size == (40, 32)
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


# ---- determinism, checkpoints, resume -------------------------------------------------------------------------

@pytest.mark.slow
def test_cpu_runs_are_bitwise_repeatable(pair):
    a = stylize(*pair, write=False, **{**TINY, "size": 48, "steps": 30, "scales": "auto"})
    b = stylize(*pair, write=False, **{**TINY, "size": 48, "steps": 30, "scales": "auto"})
    assert torch.equal(a.image, b.image) and [r.total for r in a.history] == [r.total for r in b.history]


RESUMABLE = {**TINY, "steps": 14, "lbfgs_max_iter": 3, "checkpoint_every": 3}


class _StopAt:
    def __init__(self, step):
        self.step = step

    def __call__(self, record):
        if record.step == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"scales": "24:5,32", "size": None}], ids=["one size", "two sizes"])
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(pair, tmp_path, extra):
    settings = {**RESUMABLE, **extra}
    whole = stylize(*pair, tmp_path / "whole.png", **settings)
    stopped = stylize(*pair, tmp_path / "r.png", **settings, on_step=_StopAt(8))
    assert stopped.status == "interrupted" and (tmp_path / "r.ckpt").exists()
    resumed = stylize(resume=tmp_path / "r.ckpt")
    assert resumed.status == whole.status == "completed"
    assert torch.equal(resumed.image, whole.image)
    assert [r.total for r in resumed.history] == [r.total for r in whole.history]
    assert [r.step for r in resumed.history] == [r.step for r in whole.history]


@pytest.mark.slow
def test_resume_refuses_another_config_and_shows_the_difference(pair, tmp_path):
    stylize(*pair, tmp_path / "r.png", **RESUMABLE, on_step=_StopAt(5))
    with pytest.raises(StylizeError, match=r"style_weight: 1000000.0 in the checkpoint, 5.0 now"):
        stylize(resume=tmp_path / "r.ckpt", style_weight=5)
    stylize(resume=tmp_path / "r.ckpt", log_every=1)  # what only changes the logging may differ
    transfer.images.to_pil(torch.zeros(1, 3, 48, 60)).save(pair[0])  # the content image changed on disk
    with pytest.raises(StylizeError, match="changed since the checkpoint"):
        stylize(resume=tmp_path / "r.ckpt")


@pytest.mark.slow
def test_cli_resume_and_bad_checkpoint(pair, tmp_path):
    out = tmp_path / "c.png"
    args = ["--size", "32", "--steps", "6", "--device", "cpu", "--weights", "untrained", "--scales", "none", "-q"]
    first = CliRunner().invoke(app, ["run", *map(str, pair), "-o", str(out), "--checkpoint-every", "2",
                                     "--set", "lbfgs_max_iter=2", *args])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "c.ckpt"), "-q"])
    assert again.exit_code == 0, again.output
    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    result = CliRunner().invoke(app, ["run", "--resume", str(bad)])
    assert result.exit_code == 2 and "is not a stylize checkpoint" in result.stderr
    assert "Traceback" not in result.output


# ---- the blow-up guard ----------------------------------------------------------------------------------------

class _BlowUpAt(torch.nn.Module):
    """Rosenbrock's function over pixel pairs (minimum inside [0, 1]; LBFGS needs many steps), plus 1000 at the
    given evaluations (a constant: the gradient, and so the optimizer's path, is unchanged)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls, self.loss = set(at), 0, torch.zeros(())

    def forward(self, x):
        self.calls += 1
        self.loss = self.value(x) + (1000.0 if self.calls in self.at else 0.0)
        return x

    @staticmethod
    def value(x):
        a, b = x.flatten()[0::2], x.flatten()[1::2]
        return ((0.7 - a) ** 2 + 100 * (b - a**2) ** 2).mean()


class _Sequence(torch.nn.Module):
    """A loss that takes the given values in turn (plus a tiny smooth term, so the image moves a little)."""

    def __init__(self, values):
        super().__init__()
        self.values, self.calls, self.loss = list(values), 0, torch.zeros(())

    def forward(self, x):
        self.loss = self.values[min(self.calls, len(self.values) - 1)] + 1e-9 * ((x - 0.3) ** 2).mean()
        self.calls += 1
        return x


def _guarded(fake, steps, **kwargs):
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return optimize(fake, [fake], [], image, steps=steps, style_weight=1.0, content_weight=1.0, blowup_factor=10.0,
                    **kwargs)


def test_guard_restores_the_best_image_and_keeps_it(caplog):
    fake = _BlowUpAt(range(6, 6 + BLOWUP_PATIENCE))  # 1000 too high from evaluation 6 on, for 10 evaluations
    logging.getLogger("stylize").addHandler(caplog.handler)  # the CLI stops propagation to the root logger
    try:
        result = _guarded(fake, 30, max_iter=4)
    finally:
        logging.getLogger("stylize").removeHandler(caplog.handler)
    assert len(result.history) == 30 and result.history[5].total > 10 * min(r.total for r in result.history[:5])
    assert len(result.events) == 1 and "step 15" in result.events[0] and "restored the best image" in result.events[0]
    assert "blow-up guard" in caplog.text
    assert result.output.total <= min(r.total for r in result.history)  # the output is the best image
    assert _BlowUpAt.value(result.image).item() == pytest.approx(result.output.total, rel=1e-6)


def test_guard_stops_after_repeated_blow_ups():
    fake = _Sequence([1.0, 0.5] + [100.0] * 200)
    result = _guarded(fake, 80, optimizer="adam")
    assert result.status == "diverged" and len(result.events) == 4 and "stopped" in result.events[-1]
    assert [int(e.split(":")[0].split()[1]) for e in result.events] == [12, 22, 32, 42]  # 10 in a row, each time
    assert result.output.step == 2 and len(result.history) == 42


def test_guard_lets_short_overshoots_recover():
    """LBFGS's early overshoots (a few evaluations far above the best) are not blow-ups: no restart."""
    fake = _Sequence([1.0, 0.5] + [100.0] * (BLOWUP_PATIENCE - 1) + [0.4, 0.3])
    result = _guarded(fake, 20, optimizer="adam")
    assert result.events == [] and result.status == "completed" and result.output.total == pytest.approx(0.3)


def test_guard_ignores_noise_near_zero():
    """A loss that has fallen 10^4-fold and then sits 100x above its best is converged, not blowing up."""
    fake = _Sequence([1.0, 1e-9] + [1e-7] * 30)  # 100 x the best, but below 1e-4 x the first loss
    assert _guarded(fake, 25, optimizer="adam").events == []
    fake = _Sequence([1.0, 1e-3] + [1e-1] * 30)  # the same 100x, well above the floor: a blow-up
    assert len(_guarded(fake, 25, optimizer="adam").events) == 2


def test_guard_off_keeps_the_seeds_behaviour():
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    fake = _BlowUpAt(range(6, 6 + BLOWUP_PATIENCE))
    result = optimize(fake, [fake], [], image, steps=30, style_weight=1.0, content_weight=1.0, max_iter=4)
    assert result.events == [] and result.output is None and len(result.history) == 30


@pytest.mark.slow
def test_guard_events_reach_run_json(pair, tmp_path, monkeypatch):
    from stylize import optimize as optimize_module

    real = optimize_module.evaluate
    calls = {"n": 0}

    def spiking(*args, **kwargs):  # evaluations 5 to 14 of the run return a loss 1000x too high
        c, s, tv = real(*args, **kwargs)
        calls["n"] += 1
        return (c * 1000, s * 1000, tv) if 5 <= calls["n"] < 5 + BLOWUP_PATIENCE else (c, s, tv)

    monkeypatch.setattr(optimize_module, "evaluate", spiking)
    result = stylize(*pair, tmp_path / "g.png", **{**TINY, "steps": 20})
    info = json.loads(result.paths["json"].read_text())
    assert len(info["guard_events"]) == 1 and "step 14" in info["guard_events"][0]
    assert info["final_losses"]["total"] <= min(r.total for r in result.history)



# ---- found in review ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_stage_sizes_match_the_resized_content_for_any_aspect(tmp_path, make_image):
    content = tmp_path / "c43.png"
    make_image(512, 384, 3).save(content)  # 4:3, where a stage's own rounding can differ from the image's by 1 px
    result = stylize(content, None, tmp_path / "a.png", **{**TINY, "size": 64, "steps": 3, "scales": "48,64"})
    assert [r.size for r in result.history] == [48] * 3 + [64] * 3 and result.image.shape[-2:] == (64, 85)


@pytest.mark.slow
def test_guard_events_of_every_stage_reach_run_json(pair, tmp_path, monkeypatch):
    from stylize import optimize as optimize_module

    real, calls = optimize_module.evaluate, {"n": 0}

    def spiking(*args, **kwargs):  # evaluations 3 to 12 (in the first, coarser stage) 1000x too high
        c, s, tv = real(*args, **kwargs)
        calls["n"] += 1
        return (c * 1000, s * 1000, tv) if 3 <= calls["n"] < 3 + BLOWUP_PATIENCE else (c, s, tv)

    monkeypatch.setattr(optimize_module, "evaluate", spiking)
    result = stylize(*pair, tmp_path / "e.png", **{**TINY, "scales": "24:20,32", "size": None, "steps": 4})
    info = json.loads(result.paths["json"].read_text())
    assert len(info["guard_events"]) == 1 and "step 12" in info["guard_events"][0] and result.events == info["guard_events"]


def test_ctrl_c_between_stages_keeps_the_work(pair, tmp_path, monkeypatch):
    from stylize import fused

    real, calls = fused.fuse, {"n": 0}

    def interrupted_second_time(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # setting up the second size
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fused, "fuse", interrupted_second_time)
    result = stylize(*pair, tmp_path / "s.png", **{**RESUMABLE, "scales": "24:6,32", "size": None, "lbfgs_max_iter": 2,
                                                    "checkpoint_every": 2})
    assert result.status == "interrupted" and len(result.history) == 6 and result.image.shape[-2:] == (32, 40)
    assert result.paths["image"].exists()
    stage, earlier, state = checkpoint.loop_state(checkpoint.load(tmp_path / "s.ckpt"), torch.device("cpu"))
    assert (stage, len(earlier), len(state.history)) == (0, 0, 6)  # the last complete step, kept for --resume


def test_resuming_a_converged_stage_takes_no_extra_step(pair, tmp_path):
    settings = {**TINY, "init": "content", "style_weight": 0, "steps": 10, "checkpoint_every": 1}
    whole = stylize(*pair, tmp_path / "w.png", **settings)
    assert whole.status == "converged" and len(whole.history) == 1
    resumed = stylize(resume=tmp_path / "w.ckpt")
    assert resumed.status == "converged" and len(resumed.history) == 1 and torch.equal(resumed.image, whole.image)


def test_resume_refuses_other_weights_behind_auto(pair, tmp_path):
    stylize(*pair, tmp_path / "r.png", **RESUMABLE, on_step=_StopAt(5))
    data = checkpoint.load(tmp_path / "r.ckpt")
    cfg = build_config(overrides=data["config"])
    with pytest.raises(StylizeError, match="weights: untrained meant untrained in the checkpoint, imagenet now"):
        checkpoint.check(data, cfg, data["inputs"], "imagenet", tmp_path / "r.ckpt")


def test_dlp_sim_checkpoints_resume_bitwise(pair, tmp_path):
    settings = {**RESUMABLE, "device": "dlp-sim", "steps": 8, "lbfgs_max_iter": 2, "checkpoint_every": 2}
    whole = stylize(*pair, tmp_path / "whole.png", **settings)
    stylize(*pair, tmp_path / "d.png", **settings, on_step=_StopAt(5))
    resumed = stylize(resume=tmp_path / "d.ckpt")
    assert torch.equal(resumed.image, whole.image) and [r.total for r in resumed.history] == [r.total for r in whole.history]


def test_memory_check_counts_large_style_images(pair, monkeypatch):
    from stylize import devices

    cfg = build_config(overrides={**TINY, "size": 512})
    need = transfer.estimate_bytes(512, 640, 9, cfg.lbfgs_history, torch.device("cpu"))
    monkeypatch.setattr(devices, "available_memory", lambda device: need + 2**20)  # the content alone fits
    assert transfer.setup_bytes(512, 640, 9, 1.0, torch.device("cpu")) < need  # scale 1: the optimization decides
    with pytest.raises(StylizeError, match="needs about .* GiB"):
        transfer._check_size(640, 512, build_config(overrides={**TINY, "size": 512, "style_scale": 4.0}), 9,
                             torch.device("cpu"))
    transfer._check_size(640, 512, cfg, 9, torch.device("cpu"))  # no error at scale 1


def test_resume_from_another_folder_writes_where_the_run_wrote(pair, tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    for p in pair:
        (work / p.name).write_bytes(p.read_bytes())
    monkeypatch.chdir(work)  # relative paths, as a user types them
    stylize("content.png", "style.png", "out/r.png", **RESUMABLE, on_step=_StopAt(8))
    whole = stylize("content.png", "style.png", "out/whole.png", **RESUMABLE)
    monkeypatch.chdir(elsewhere)
    resumed = stylize(resume=work / "out" / "r.ckpt")
    assert resumed.paths["image"] == (work / "out" / "r.png") and resumed.status == "completed"
    assert torch.equal(resumed.image, whole.image)
    monkeypatch.chdir(work)  # giving the same inputs again, relative, is no difference
    stylize("content.png", "style.png", resume="out/r.ckpt", write=False)
