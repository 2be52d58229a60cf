"""The seed's optimization loop: LBFGS (or Adam) over the input image, one closure evaluation = one step.

Beyond the seed: a total-variation term, a blow-up guard that keeps the best image, and the loop's state at
every optimizer step (:class:`LoopState`) for checkpoints that resume bit for bit.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .objective import Objective, Terms
from .plateau import plateau

log = logging.getLogger("stylize")
OPTIMIZERS = ("lbfgs", "adam")
MAX_RESTARTS = 3  # blow-ups the guard recovers from before it stops the run
# A finite loss must stay above blowup_factor x the best for this many evaluations in a row to be a blow-up:
# LBFGS's fixed steps overshoot early in every run (measured, the seed's recipe at 128 and 256 px: 0.63 -> 34.7,
# 0.87 -> 85) and recover within 4 evaluations; restarting it there only made it overshoot again.
BLOWUP_PATIENCE = 10
BLOWUP_FLOOR = 1e-4  # ...and a rise that stays below 1e-4 x the stage's first loss is rounding noise, not a blow-up


@dataclass
class StepRecord:
    """Losses at one closure evaluation, already multiplied by their weights (as the seed prints)."""

    step: int  # 1-based evaluation count, over all stages of a run
    seconds: float  # since the optimization started
    content: float
    style: float
    total: float  # content + style + tv
    tv: float = 0.0  # total-variation term (0 unless tv_weight > 0)
    size: int = 0  # shorter edge of the image this step optimized (multi-scale runs have several)
    temporal: float = 0.0  # stylize video's temporal term (0 unless the objective holds a warped previous frame)


@dataclass
class LoopState:
    """Everything the loop needs to continue exactly where it was, between two optimizer steps."""

    image: torch.Tensor
    optimizer: dict[str, Any]  # the optimizer's state_dict
    history: list[StepRecord]
    best_image: torch.Tensor | None = None
    best: StepRecord | None = None
    restarts: int = 0
    events: list[str] = field(default_factory=list)
    over: int = 0  # evaluations in a row above blowup_factor x the best
    converged: bool = False  # LBFGS stopped moving: a resumed loop must not step again


@dataclass
class OptimizeResult:
    image: torch.Tensor  # (1, 3, H, W) in [0, 1], detached
    history: list[StepRecord] = field(default_factory=list)
    interrupted: bool = False  # stopped by Ctrl-C (KeyboardInterrupt)
    converged: bool = False  # LBFGS stopped making progress before `steps`
    diverged: bool = False  # the loss became inf/NaN (or kept blowing up); the image is the best (or last finite) one
    output: StepRecord | None = None  # the losses of `image`, when known (the guard evaluates the final image)
    events: list[str] = field(default_factory=list)  # what the blow-up guard did, one line each
    stop_reason: str | None = None  # why the loop stopped before `steps` (the plateau rule's reason), else None

    @property
    def status(self) -> str:
        return next((name for name in ("interrupted", "diverged", "converged") if getattr(self, name)), "completed")


class _Diverged(Exception):
    pass


class _BlowUp(Exception):
    pass


class _BudgetSpent(Exception):
    """A line search asked for an evaluation beyond ``steps``."""


class _Plateau(Exception):
    """The plateau rule (stylize/plateau.py) says stop; args[0] is its reason."""


def _values(*xs: torch.Tensor | float) -> list[float]:
    """Python floats of scalar tensors, with one device sync (a sum over no loss modules is the int 0)."""
    tensors = [x for x in xs if isinstance(x, torch.Tensor)]
    values = iter(torch.stack([t.detach().float() for t in tensors]).cpu().tolist() if tensors else [])
    return [next(values) if isinstance(x, torch.Tensor) else float(x) for x in xs]


def evaluate(objective: Objective, image: torch.Tensor) -> Terms:
    """The seed's closure up to the backward: clamp the image to [0, 1] (the loop's projection), clear its
    gradient, and return the objective's weighted loss terms. ``stylize bench`` times this plus the backward."""
    with torch.no_grad():
        image.clamp_(0, 1)
    image.grad = None
    return objective.evaluate(image)


def _snapshot(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A copy of the optimizer's state that later steps cannot change, at the cost of a few image-sized clones.

    Tensors are cloned (Adam's moments and LBFGS's ``prev_flat_grad`` are updated in place); lists are copied
    shallowly: LBFGS only appends fresh tensors to its history lists and pops old ones, never changing one.
    """
    sd = optimizer.state_dict()
    copy = lambda v: v.clone() if isinstance(v, torch.Tensor) else list(v) if isinstance(v, list) else v
    return {"state": {k: {name: copy(v) for name, v in st.items()} for k, st in sd["state"].items()},
            "param_groups": [dict(g, params=list(g["params"])) for g in sd["param_groups"]]}


def optimize(
    objective: Objective,
    image: torch.Tensor,
    *,
    steps: int,
    optimizer: str = "lbfgs",
    lr: float = 1.0,
    max_iter: int = 20,
    history_size: int = 100,
    project: bool = False,
    line_search: str | None = None,
    blowup_factor: float = 0.0,
    plateau_tol: float = 0.0,
    plateau_window: int = 50,
    first_step: int = 1,
    size: int = 0,
    elapsed: float = 0.0,
    resume: LoopState | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    on_boundary: Callable[[LoopState], None] | None = None,
) -> OptimizeResult:
    """Run LBFGS (or Adam) on ``image`` (modified in place) for exactly ``steps`` closure evaluations.

    The closure is the seed's: clamp the image to [0, 1], the ``objective``'s weighted loss terms (the seed's
    are the content and style losses; see :mod:`stylize.objective`), their backward. Departure from the seed: its
    ``while run[0] <= num_steps`` loop overshoots (300 steps run 320 evaluations); we give the last LBFGS step
    only the evaluations that remain.

    ``project``: zero the gradient components that push a pixel already at 0 or 1 further out (the active set
    of L-BFGS-B, without its bounded line search). The seed's closure clamps such a pixel straight back, so
    LBFGS would build its curvature pairs from steps that never happened; with the projection the loss
    falls steadily where the seed's loop stalls and jumps (measured: the seed's best loss of 300 evaluations
    reached in ~155 instead of never, at 128 px). The loss and the clamp are unchanged.

    ``blowup_factor`` > 0 turns on the blow-up guard: an evaluation whose loss is inf/NaN, or the
    ``BLOWUP_PATIENCE``-th in a row above ``blowup_factor`` times the best so far, restores the best image and
    restarts the optimizer (its history is what led it astray), with a warning; after ``MAX_RESTARTS`` such
    restarts the run stops as diverged. A
    loss still below ``BLOWUP_FLOOR`` times the first one is never a blow-up (near 0, 10x is rounding noise).
    With the guard on, the image returned is the best one evaluated, the final image included (one extra
    forward pass), and ``output`` holds its losses. With it off (the seed), a non-finite loss stops the run with
    the last image whose loss was finite, and otherwise the last image is returned.

    Ctrl-C (KeyboardInterrupt) ends the loop early with ``interrupted=True``; the image so far is kept.
    ``line_search="strong_wolfe"`` uses torch's line search (the seed uses none: fixed steps). It evaluates
    several times per iteration, so when ``steps`` runs out inside one the image of the last evaluation is kept.

    ``plateau_tol`` > 0: stop early, as converged (``stop_reason`` says why), once the best loss of this call
    fell by less than ``plateau_tol`` (relative) over its last ``plateau_window`` evaluations
    (:func:`stylize.plateau.plateau`); the image is then the last evaluated one (the best, with the guard on).

    ``first_step``/``size``/``elapsed`` number, label and time the records (a multi-scale run calls this once
    per size);
    ``resume`` continues from a :class:`LoopState`; ``on_boundary`` receives one (a snapshot) after every
    optimizer step, for checkpoints.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    image.requires_grad_(True)

    def new_optimizer() -> torch.optim.Optimizer:
        if optimizer == "adam":
            return torch.optim.Adam([image], lr=lr)
        return torch.optim.LBFGS([image], max_iter=max_iter, history_size=history_size, line_search_fn=line_search)

    opt = new_optimizer()
    state = resume or LoopState(image=image, optimizer={}, history=[])
    if resume is not None:
        with torch.no_grad():
            image.copy_(resume.image)
        opt.load_state_dict(resume.optimizer)
    state.history = list(state.history)
    guard = blowup_factor > 0
    if guard and state.best_image is None:
        state.best_image = image.detach().clone()
    result = OptimizeResult(image=image, history=state.history, events=state.events, converged=state.converged)
    # The image to fall back on when a run stops mid line search or on a non-finite loss; with the guard on,
    # the best image is that (it starts as the init), so no other image-sized copy is kept.
    last_finite = state.best_image if guard else image.detach().clone()
    start = time.perf_counter() - (state.history[-1].seconds if state.history else elapsed)
    spent = False

    def closure() -> torch.Tensor:
        if len(state.history) >= steps:
            raise _BudgetSpent
        if plateau_tol > 0 and (reason := plateau([r.total for r in state.history], plateau_tol, plateau_window)):
            raise _Plateau(reason)
        terms = evaluate(objective, image)
        loss = terms.total
        content, style, total, tv_value, temporal = _values(terms.content, terms.style, loss, terms.tv, terms.temporal)
        record = StepRecord(first_step + len(state.history), time.perf_counter() - start, content, style, total,
                            tv=tv_value, size=size, temporal=temporal)
        if not math.isfinite(record.total):
            raise _BlowUp(record) if guard else _Diverged
        if guard and state.best is not None and record.total > blowup_factor * state.best.total \
                and record.total > BLOWUP_FLOOR * state.history[0].total:
            state.over += 1
            if state.over >= BLOWUP_PATIENCE:
                _append(record)
                raise _BlowUp(record)
        else:
            state.over = 0
        if not guard:
            last_finite.copy_(image.detach())
        if guard and (state.best is None or record.total < state.best.total):
            state.best = record
            state.best_image.copy_(image.detach())
        objective.backward(terms)
        if project:
            with torch.no_grad():  # a pixel at a bound is not asked to move further out: clamping would undo it
                g = image.grad
                g.masked_fill_(((image <= 0) & (g > 0)) | ((image >= 1) & (g < 0)), 0)
        _append(record)
        return loss

    def _append(record: StepRecord) -> None:
        state.history.append(record)
        if on_step is not None:
            on_step(record)

    while len(state.history) < steps and not result.converged:
        try:
            while len(state.history) < steps:
                before = len(state.history)
                if optimizer == "lbfgs":
                    allowed = opt.param_groups[0]["max_iter"] = min(max_iter, steps - before)
                    if line_search:  # several evaluations per iteration: cap them (torch's default is 1.25x)
                        opt.param_groups[0]["max_eval"] = allowed
                opt.step(closure)
                # One evaluation although more were allowed: the gradient is ~0 and LBFGS will not move again.
                state.converged = optimizer == "lbfgs" and len(state.history) - before == 1 and allowed > 1
                if on_boundary is not None:
                    with torch.no_grad():
                        on_boundary(replace(state, image=image.detach().clone(), optimizer=_snapshot(opt),
                                            history=list(state.history), events=list(state.events),
                                            best_image=None if state.best_image is None else state.best_image.clone()))
                if state.converged:
                    result.converged = True
                    break
            break
        except KeyboardInterrupt:
            result.interrupted = True
        except _Diverged:
            result.diverged = True
        except _BudgetSpent:  # mid line search, the image is a trial point: keep the last evaluated one instead
            spent = True
        except _Plateau as e:  # as _BudgetSpent, and the run says why it stopped
            spent, result.converged, result.stop_reason = True, True, e.args[0]
        except _BlowUp as e:
            if not _recover(e.args[0], state, image):
                result.diverged = True
            else:
                opt = new_optimizer()
                continue
        break
    with torch.no_grad():
        if result.diverged or spent:
            image.copy_(last_finite)
        image.clamp_(0, 1)
    if guard and state.best is not None:
        result.output = state.best
        if not (result.interrupted or result.diverged or spent):  # the final image, moved since its last evaluation
            try:
                terms = evaluate(objective, image.detach())
                content, style, total, tv_value, temporal = _values(terms.content, terms.style, terms.total, terms.tv,
                                                                    terms.temporal)
            except KeyboardInterrupt:  # the best evaluated image is kept
                result.interrupted, total = True, math.inf
            if math.isfinite(total) and total <= state.best.total:
                result.output = replace(state.history[-1], content=content, style=style, total=total, tv=tv_value,
                                        temporal=temporal)
        if result.output is state.best:
            with torch.no_grad():
                image.copy_(state.best_image)
    result.image = image.detach()
    return result


def _recover(record: StepRecord, state: LoopState, image: torch.Tensor) -> bool:
    """The blow-up guard's response: the best image back, a warning; False when the run should stop."""
    best = state.best
    if best is None or state.restarts >= MAX_RESTARTS:
        event = (f"step {record.step}: loss {record.total:.4g}; "
                 + ("no finite loss yet" if best is None else f"{MAX_RESTARTS} restarts already") + ": stopped")
        state.events.append(event)
        log.warning("blow-up guard: %s. Lower the weights or use --set lbfgs_line_search=strong_wolfe.", event)
        return False
    state.restarts, state.over = state.restarts + 1, 0
    event = (f"step {record.step}: loss {record.total:.4g} vs best {best.total:.4g} (step {best.step})"
             + (f", above {BLOWUP_PATIENCE} evaluations in a row" if math.isfinite(record.total) else "") + "; "
             f"restored the best image and restarted the optimizer ({state.restarts}/{MAX_RESTARTS})")
    state.events.append(event)
    log.warning("blow-up guard: %s", event)
    with torch.no_grad():
        image.copy_(state.best_image)
    return True
