"""The optimization loop over an Objective: the blow-up guard on prescribed loss sequences, Adam, the events it records."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from stylize.objective import GraphObjective, LossWeights, Terms
from stylize.optimize import BLOWUP_PATIENCE, optimize
from stylize.transfer import stylize

TINY = {"size": 32, "steps": 6, "device": "cpu", "weights": "untrained", "scales": "none"}


def test_adam_lowers_the_loss_in_exactly_the_steps(pair):
    result = stylize(*pair, write=False, **{**TINY, "steps": 25, "optimizer": "adam", "lr": 0.05})
    totals = [r.total for r in result.history]
    assert len(totals) == 25 and result.output_losses.total < 0.5 * totals[0]
    # the lbfgs_* keys (here the untrained recipe's line search) are LBFGS's: Adam runs the same without them
    recipe = stylize(*pair, write=False, **{**TINY, "steps": 5, "optimizer": "adam", "lr": 0.05,
                                            "lbfgs_line_search": "strong_wolfe"})
    assert [r.total for r in recipe.history] == totals[:5]


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
    return optimize(GraphObjective(fake, [fake], [], LossWeights(1.0, 1.0)), image, steps=steps, blowup_factor=10.0,
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
    result = optimize(GraphObjective(fake, [fake], [], LossWeights(1.0, 1.0)), image, steps=30, max_iter=4)
    assert result.events == [] and result.output is None and len(result.history) == 30


@pytest.mark.slow
def test_guard_events_reach_run_json(pair, tmp_path, monkeypatch):
    from stylize import optimize as optimize_module

    real = optimize_module.evaluate
    calls = {"n": 0}

    def spiking(*args, **kwargs):  # evaluations 5 to 14 of the run return a loss 1000x too high
        t = real(*args, **kwargs)
        calls["n"] += 1
        return Terms(t.content * 1000, t.style * 1000, t.tv) if 5 <= calls["n"] < 5 + BLOWUP_PATIENCE else t

    monkeypatch.setattr(optimize_module, "evaluate", spiking)
    result = stylize(*pair, tmp_path / "g.png", **{**TINY, "steps": 20})
    info = json.loads(result.paths["json"].read_text())
    assert len(info["guard_events"]) == 1 and "step 14" in info["guard_events"][0]
    assert info["final_losses"]["total"] <= min(r.total for r in result.history)


@pytest.mark.slow
def test_guard_events_of_every_stage_reach_run_json(pair, tmp_path, monkeypatch):
    from stylize import optimize as optimize_module

    real, calls = optimize_module.evaluate, {"n": 0}

    def spiking(*args, **kwargs):  # evaluations 3 to 12 (in the first, coarser stage) 1000x too high
        t = real(*args, **kwargs)
        calls["n"] += 1
        return Terms(t.content * 1000, t.style * 1000, t.tv) if 3 <= calls["n"] < 3 + BLOWUP_PATIENCE else t

    monkeypatch.setattr(optimize_module, "evaluate", spiking)
    result = stylize(*pair, tmp_path / "e.png", **{**TINY, "scales": "24:20,32", "size": None, "steps": 4})
    info = json.loads(result.paths["json"].read_text())
    assert len(info["guard_events"]) == 1 and "step 12" in info["guard_events"][0] and result.events == info["guard_events"]
