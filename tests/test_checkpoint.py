"""Determinism, checkpoints and `--resume`: an interrupted and resumed run equals an uninterrupted one, bit for bit."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from stylize import checkpoint, images
from stylize.cli import app
from stylize.config import build_config
from stylize.errors import StylizeError
from stylize.transfer import stylize
from conftest import StopAt

TINY = {"size": 32, "steps": 6, "device": "cpu", "weights": "untrained", "scales": "none"}


@pytest.mark.slow
def test_cpu_runs_are_bitwise_repeatable(pair):
    a = stylize(*pair, write=False, **{**TINY, "size": 48, "steps": 30, "scales": "auto"})
    b = stylize(*pair, write=False, **{**TINY, "size": 48, "steps": 30, "scales": "auto"})
    assert torch.equal(a.image, b.image) and [r.total for r in a.history] == [r.total for r in b.history]


RESUMABLE = {**TINY, "steps": 14, "lbfgs_max_iter": 3, "checkpoint_every": 3}


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"scales": "24:5,32", "size": None}], ids=["one size", "two sizes"])
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(pair, tmp_path, extra):
    settings = {**RESUMABLE, **extra}
    whole = stylize(*pair, tmp_path / "whole.png", **settings)
    stopped = stylize(*pair, tmp_path / "r.png", **settings, on_step=StopAt(8))
    assert stopped.status == "interrupted" and (tmp_path / "r.ckpt").exists()
    resumed = stylize(resume=tmp_path / "r.ckpt")
    assert resumed.status == whole.status == "completed"
    assert torch.equal(resumed.image, whole.image)
    assert [r.total for r in resumed.history] == [r.total for r in whole.history]
    assert [r.step for r in resumed.history] == [r.step for r in whole.history]


@pytest.mark.slow
def test_resume_refuses_another_config_and_shows_the_difference(pair, tmp_path):
    stylize(*pair, tmp_path / "r.png", **RESUMABLE, on_step=StopAt(5))
    with pytest.raises(StylizeError, match=r"style_weight: 1000000.0 in the checkpoint, 5.0 now"):
        stylize(resume=tmp_path / "r.ckpt", style_weight=5)
    stylize(resume=tmp_path / "r.ckpt", log_every=1)  # what only changes the logging may differ
    images.to_pil(torch.zeros(1, 3, 48, 60)).save(pair[0])  # the content image changed on disk
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
    stylize(*pair, tmp_path / "r.png", **RESUMABLE, on_step=StopAt(5))
    data = checkpoint.load(tmp_path / "r.ckpt")
    cfg = build_config(overrides=data["config"])
    with pytest.raises(StylizeError, match="weights: untrained meant untrained in the checkpoint, imagenet now"):
        checkpoint.check(data, cfg, data["inputs"], "imagenet", tmp_path / "r.ckpt")


def test_dlp_sim_checkpoints_resume_bitwise(pair, tmp_path):
    settings = {**RESUMABLE, "device": "dlp-sim", "steps": 8, "lbfgs_max_iter": 2, "checkpoint_every": 2}
    whole = stylize(*pair, tmp_path / "whole.png", **settings)
    stylize(*pair, tmp_path / "d.png", **settings, on_step=StopAt(5))
    resumed = stylize(resume=tmp_path / "d.ckpt")
    assert torch.equal(resumed.image, whole.image) and [r.total for r in resumed.history] == [r.total for r in whole.history]


def test_resume_from_another_folder_writes_where_the_run_wrote(pair, tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    for p in pair:
        (work / p.name).write_bytes(p.read_bytes())
    monkeypatch.chdir(work)  # relative paths, as a user types them
    stylize("content.png", "style.png", "out/r.png", **RESUMABLE, on_step=StopAt(8))
    whole = stylize("content.png", "style.png", "out/whole.png", **RESUMABLE)
    monkeypatch.chdir(elsewhere)
    resumed = stylize(resume=work / "out" / "r.ckpt")
    assert resumed.paths["image"] == (work / "out" / "r.png") and resumed.status == "completed"
    assert torch.equal(resumed.image, whole.image)
    monkeypatch.chdir(work)  # giving the same inputs again, relative, is no difference
    stylize("content.png", "style.png", resume="out/r.ckpt", write=False)
