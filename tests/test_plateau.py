"""The plateau rule (stylize/plateau.py): the pure function, the loop's use of it, its config keys and the run."""

import json

import pytest
import torch

from stylize import build_config, stylize
from stylize.errors import StylizeError
from stylize.objective import GraphObjective, LossWeights
from stylize.optimize import optimize
from stylize.plateau import plateau


def test_plateau_is_the_relative_fall_of_the_best_loss_over_the_window():
    totals = [10.0 * 0.99**i for i in range(40)]  # -1 % per evaluation: over 10 evaluations 1 - 0.99**10 = 9.56 %
    assert plateau(totals, tol=0.0957, window=10) is not None
    assert plateau(totals, tol=0.0955, window=10) is None
    reason = plateau(totals, tol=0.1, window=10)
    assert reason == "plateau: the best loss fell 9.56% over the last 10 evaluations (plateau_tol 0.1)"


def test_plateau_needs_more_than_a_window_and_a_positive_tol():
    flat = [1.0] * 11
    assert plateau(flat[:10], 0.01, 10) is None  # 10 totals: nothing to compare with yet
    assert plateau(flat, 0.01, 10) is not None  # 11: the first is the window's start
    assert plateau(flat, 0.0, 10) is None  # off
    assert plateau([], 0.5, 1) is None


def test_plateau_follows_the_best_loss_not_the_last():
    # A line search's trial points above the best do not make a plateau, nor hide one.
    falling = [8.0, 4.0, 50.0, 2.0, 60.0, 1.0]
    assert plateau(falling, 0.1, 3) is None  # best 4 -> 1 over the last 3
    stalled = [8.0, 1.0, 50.0, 60.0, 70.0, 0.999]
    assert "0.10%" in plateau(stalled, 0.01, 3)  # best 1 -> 0.999 despite the spikes
    spike_before = [1.0, 100.0, 0.5, 0.5, 0.5]  # the window's start is the best so far (1), not the spike
    assert plateau(spike_before, 0.4, 3) is None and plateau(spike_before, 0.6, 3) is not None


def test_plateau_at_zero_and_nan():
    assert plateau([0.0, 0.0, 0.0], 0.01, 2) == "plateau: the loss reached 0"
    assert plateau([float("nan"), float("nan"), 1.0], 0.01, 1) is None


class _Decay(torch.nn.Module):
    """A loss module whose loss is a fixed sequence of values (plus a tiny smooth term that moves the image)."""

    def __init__(self, values):
        super().__init__()
        self.values, self.calls, self.loss, self.seen = list(values), 0, torch.zeros(()), []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        self.loss = self.values[min(self.calls, len(self.values) - 1)] + 1e-9 * ((x - 0.3) ** 2).mean()
        self.calls += 1
        return x


def _run(values, steps, **kwargs):
    fake = _Decay(values)
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return fake, optimize(GraphObjective(fake, [fake], [], LossWeights(1.0, 1.0)), image, steps=steps,
                          optimizer="adam", **kwargs)


def test_loop_stops_at_the_first_plateau_with_its_reason():
    values = [1.0 / (i + 1) for i in range(20)] + [0.05 * (1 - 1e-4 * i) for i in range(100)]  # falls, then flat
    fake, result = _run(values, 100, plateau_tol=0.01, plateau_window=5)
    totals = [r.total for r in result.history]
    first = next(n for n in range(1, 101) if plateau(values[:n], 0.01, 5))  # the rule on the values alone
    assert len(result.history) == first  # stopped before evaluating again
    assert plateau(totals[:-1], 0.01, 5) is None and plateau(totals, 0.01, 5) is not None
    assert result.status == "converged" and result.stop_reason == plateau(totals, 0.01, 5)
    assert torch.equal(result.image, fake.seen[-1].clamp(0, 1))  # the last evaluated image, not a further step


def test_loop_with_the_guard_returns_the_best_image():
    values = [3.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    fake, result = _run(values, 50, plateau_tol=0.01, plateau_window=4, blowup_factor=10.0)
    assert len(result.history) == 6 and result.status == "converged"  # [3, 1] vs the best: 1 -> 1
    assert result.output.step == 2 and torch.equal(result.image, fake.seen[1].clamp(0, 1))


def test_loop_without_the_rule_runs_every_step():
    _, result = _run([1.0] * 30, 30)
    assert len(result.history) == 30 and result.status == "completed" and result.stop_reason is None


def test_config_keys_validate_and_are_off_in_the_seeds_recipe():
    cfg = build_config()
    assert (cfg.plateau_tol, cfg.plateau_window) == (0.0, 50)
    assert build_config(sets=["plateau_tol=1e-3", "plateau_window=20"]).plateau_window == 20
    for item, message in [("plateau_tol=-1", "plateau_tol: -1 is out of range"),
                          ("plateau_window=0", "plateau_window: 0 is out of range"),
                          ("plateau_window=2.5", "plateau_window: expected a whole number")]:
        with pytest.raises(StylizeError, match=message):
            build_config(sets=[item])


def test_run_reports_the_plateau(pair, tmp_path):
    result = stylize(*pair, tmp_path / "p.png", size=32, steps=200, weights="untrained", scales="none",
                     plateau_tol=0.5, plateau_window=3)
    info = json.load(open(result.paths["json"]))
    assert result.status == "converged" and len(result.history) < 200
    assert info["status"] == "converged" and info["stop_reason"].startswith("plateau: the best loss fell")
    assert info["steps_run"] == len(result.history)


def test_cli_says_when_and_why_it_stopped(pair, tmp_path):
    from typer.testing import CliRunner

    from stylize.cli import app

    args = ["run", *map(str, pair), "-o", str(tmp_path / "c.png"), "--size", "32", "--steps", "200", "--weights",
            "untrained", "-c", "untrained", "--set", "plateau_tol=0.5", "--set", "plateau_window=3", "--scales", "none"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    steps = json.loads((tmp_path / "c.run.json").read_text())["steps_run"]
    assert f"status: converged after {steps} steps: plateau: the best loss fell" in result.stderr


def test_progress_bar_ends_with_the_reason():
    import io

    from rich.console import Console

    from stylize.cli.app import _Progress
    from stylize.optimize import StepRecord
    from stylize.schedule import Stage

    out = io.StringIO()
    bar = _Progress(Console(file=out, force_terminal=True, width=200), log_every=50)
    bar.plan([Stage(32, 32, 32, 100)])
    for step in range(1, 8):
        bar.step(StepRecord(step, 0.1 * step, 1.0, 2.0, 3.0))
    bar.stopped_early(7, "plateau: the best loss fell 0.10% over the last 3 evaluations")
    bar.stop()
    text = out.getvalue()
    assert "7/7" in text and "stopped: plateau: the best loss fell 0.10%" in text
