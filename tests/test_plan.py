"""The memory planner (stylize/plan.py): whole image while it fits, tiled above, a shorter LBFGS history at large
sizes, refusals before any work; a tiled run checkpoints its plan and resumes bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from stylize import features, plan, stylize
from stylize.cli.app import app
from stylize.config import Config, parse_bytes, resolve_recipe
from stylize.errors import StylizeError
from stylize.schedule import Stage
from conftest import StopAt

CPU = torch.device("cpu")
SEED_CUT = features.last_tap(Config().content_layers, Config().style_layers)


def _stage(w, h):
    return Stage(min(w, h), w, h, 10)


def test_whole_image_while_it_fits_then_tiled_then_refused():
    cfg = Config(size=1536, max_memory="3GB")
    small = plan.make([_stage(170, 128)], cfg, SEED_CUT, CPU, (4, 3))
    assert small.stages[0].mode == "whole" and small.stages[0].history == 100  # the seed's history at small sizes
    big = plan.make([_stage(1024, 768), _stage(2048, 1536)], cfg, SEED_CUT, CPU, (4, 3))
    assert [s.mode for s in big.stages] == ["tiled", "tiled"]
    assert all(s.peak_bytes <= parse_bytes("3GB") for s in big.stages)
    assert big.stages[1].history <= 12 and big.stages[1].tiles > 1  # at most 40 megapixel-entries / 3.1 MP
    assert plan.make([_stage(2048, 1536)], Config(size=1536, max_memory="40GB"), SEED_CUT, CPU, (4, 3)).stages[0].mode == "whole"
    with pytest.raises(StylizeError, match=r"size 6000 .* even tiled, more than max_memory 3GB\. The largest size that fits is about (\d+)") as err:
        plan.make([_stage(8000, 6000)], Config(size=6000, max_memory="3GB"), SEED_CUT, CPU, (4, 3))
    fits = int(str(err.value).split("use --size ")[1].rstrip("."))
    assert plan.plan_stage(_stage(round(fits * 4 / 3), fits), cfg, SEED_CUT, CPU, parse_bytes("3GB")) is not None
    assert plan.plan_stage(_stage(round((fits + 8) * 4 / 3), fits + 8), cfg, SEED_CUT, CPU, parse_bytes("3GB")) is None
    with pytest.raises(StylizeError, match="too small for even one tile"):
        plan.make([_stage(170, 128)], Config(size=128, max_memory="100MB"), SEED_CUT, CPU, (4, 3))


def test_tiles_grow_the_peak_far_slower_than_the_image():
    cfg = resolve_recipe(Config(), untrained_fallback=True)
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    a = plan.tiled_bytes(2048, 1536, cfg, cut, 5, 256, CPU) - plan.tiled_bytes(1024, 768, cfg, cut, 5, 256, CPU)
    b = plan.whole_bytes(2048, 1536, cfg, cut, 5, CPU) - plan.whole_bytes(1024, 768, cfg, cut, 5, CPU)
    assert a < b / 4


@pytest.mark.parametrize("args, message", [
    (["--max-memory", "lots"], "max_memory: expected a memory size such as 4GB"),
    (["--max-memory", "100MB"], "max_memory 100MB is too small for even one tile"),
    (["--max-memory", "2GB", "--size", "6000"], "The largest size that fits is about"),
])
def test_cli_refuses_with_one_line_and_writes_nothing(pair, tmp_path, args, message):
    out = tmp_path / "out" / "x.png"
    result = CliRunner().invoke(app, ["run", str(pair[0]), str(pair[1]), "-o", str(out), "--weights", "untrained",
                                      "--steps", "2", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


RESUMABLE = {"size": 48, "steps": 14, "device": "cpu", "weights": "untrained", "scales": "none",
             "lbfgs_max_iter": 3, "checkpoint_every": 3, "lbfgs_history": 5}


@pytest.mark.slow
def test_a_tiled_run_resumes_with_its_plan_bit_for_bit(pair, tmp_path, monkeypatch):
    whole_image = stylize(*pair, tmp_path / "w.png", **RESUMABLE)
    assert whole_image.plan["stages"][0]["mode"] == "whole"
    monkeypatch.setattr(plan, "whole_bytes", lambda *a: 2**60)  # as under a tiny max_memory: tiles
    tiled = stylize(*pair, tmp_path / "t.png", **RESUMABLE)
    assert tiled.plan["stages"][0]["mode"] == "tiled" and tiled.plan["stages"][0]["tiles"] >= 2
    assert json.loads((tmp_path / "t.run.json").read_text())["plan"] == tiled.plan
    first_w, first_t = whole_image.history[0].total, tiled.history[0].total  # the same objective, evaluated by tiles
    assert abs(first_t - first_w) / first_w < 1e-5
    stopped = stylize(*pair, tmp_path / "r.png", **RESUMABLE, on_step=StopAt(8))
    assert stopped.status == "interrupted"
    monkeypatch.undo()  # the planner would now choose the whole image: the checkpoint's plan wins
    resumed = stylize(resume=tmp_path / "r.ckpt")
    assert resumed.plan["stages"] == tiled.plan["stages"]  # (the budget is the free memory of the day)
    assert torch.equal(resumed.image, tiled.image)
    assert [r.total for r in resumed.history] == [r.total for r in tiled.history]


def _peak(size: int, max_memory: str | None) -> tuple[dict, int]:
    code = ("import json; from stylize import stylize; from stylize.bench import peak_rss_bytes; "
            f"r = stylize(write=False, size={size}, steps=12, device='cpu', weights='untrained', scales='none', "
            f"lbfgs_history=5, max_memory={max_memory!r}); "
            "print(json.dumps([r.plan, peak_rss_bytes()]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "STYLIZE_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("size, max_memory, mode", [(128, None, "whole"), (384, "0.95GB", "tiled")])
def test_predicted_peak_within_25_percent_of_the_measured_one(size, max_memory, mode):
    """In a fresh process, its own peak (VmHWM: see tests/test_memory.py); the history is filled
    (12 evaluations, history 5), so the prediction's LBFGS vectors exist."""
    made, measured = _peak(size, max_memory)
    assert made["stages"][-1]["mode"] == mode
    assert 0.75 * measured <= made["peak_bytes"] <= 1.25 * measured, (made["peak_bytes"] / 2**30, measured / 2**30)


@pytest.mark.slow
def test_bench_high_res_rows():
    """`stylize bench --high-res`: the planned (tiled under a small max_memory) and the whole-image evaluation,
    each in a fresh process, with the plan's figures and the measured peak."""
    from stylize.bench import BenchConfig, bench_high_res

    rows = bench_high_res(BenchConfig(sizes=[128], sets=["weights=untrained", "max_memory=0.8GB", "lbfgs_history=8"],
                                      repeat=2, high_res=True))
    assert [r["mode"] for r in rows] == ["tiled", "whole"]
    assert rows[0]["tiles"] > 1 and rows[1]["tiles"] == 1 and rows[0]["history"] <= rows[1]["history"] == 8
    for r in rows:  # a real run, its history filled before the timed evaluations
        assert r["evaluations"] == r["history"] + 1 + 2 and len(r["eval_s"]) == 2 and r["setup_s"] > 0
        assert 0.75 * r["peak_rss_bytes"] <= r["predicted_peak_bytes"] <= 1.25 * r["peak_rss_bytes"]
        assert r["s_per_mp"] == pytest.approx(r["median_s"] / r["megapixels"])
