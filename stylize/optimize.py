"""The seed's optimization loop: LBFGS over the input image, one closure evaluation = one step."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .losses import ContentLoss, StyleLoss


@dataclass
class StepRecord:
    """Losses at one closure evaluation, already multiplied by the content/style weights (as the seed prints)."""

    step: int  # 1-based evaluation count
    seconds: float  # since the optimization started
    content: float
    style: float
    total: float


@dataclass
class OptimizeResult:
    image: torch.Tensor  # (1, 3, H, W) in [0, 1], detached
    history: list[StepRecord] = field(default_factory=list)
    interrupted: bool = False  # stopped by Ctrl-C (KeyboardInterrupt)
    converged: bool = False  # LBFGS stopped making progress before `steps`
    diverged: bool = False  # the loss became inf/NaN; the image is the last one with a finite loss

    @property
    def status(self) -> str:
        return next((name for name in ("interrupted", "diverged", "converged") if getattr(self, name)), "completed")


class _Diverged(Exception):
    pass


def _values(*xs: torch.Tensor | float) -> list[float]:
    """Python floats of scalar tensors, with one device sync (a sum over no loss modules is the int 0)."""
    tensors = [x for x in xs if isinstance(x, torch.Tensor)]
    values = iter(torch.stack([t.detach().float() for t in tensors]).cpu().tolist() if tensors else [])
    return [next(values) if isinstance(x, torch.Tensor) else float(x) for x in xs]


def evaluate(
    model: nn.Module,
    content_losses: Sequence[ContentLoss],
    style_losses: Sequence[StyleLoss],
    image: torch.Tensor,
    style_weight: float,
    content_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's closure up to the backward: clamp the image to [0, 1], clear its gradient, run the model,
    and return the weighted (content, style) loss sums. ``stylize bench`` times this plus the backward."""
    with torch.no_grad():
        image.clamp_(0, 1)
    image.grad = None
    model(image)
    style_score = sum(sl.loss for sl in style_losses) * style_weight
    content_score = sum(cl.loss for cl in content_losses) * content_weight
    return content_score, style_score


class _BudgetSpent(Exception):
    """A line search asked for an evaluation beyond ``steps``."""


def optimize(
    model: nn.Module,
    content_losses: Sequence[ContentLoss],
    style_losses: Sequence[StyleLoss],
    image: torch.Tensor,
    *,
    steps: int,
    style_weight: float,
    content_weight: float,
    max_iter: int = 20,
    history_size: int = 100,
    project: bool = False,
    line_search: str | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> OptimizeResult:
    """Run LBFGS on ``image`` (modified in place) for exactly ``steps`` closure evaluations.

    The closure is the seed's: clamp the image to [0, 1], forward, weighted sums of the loss modules'
    losses, backward. Departure from the seed: its ``while run[0] <= num_steps`` loop overshoots (300
    steps run 320 evaluations); we give the last LBFGS step only the evaluations that remain.

    ``project``: zero the gradient components that push a pixel already at 0 or 1 further out (the active set
    of L-BFGS-B, without its bounded line search). The seed's closure clamps such a pixel straight back, so
    LBFGS would build its curvature pairs from steps that never happened; with the projection the loss
    falls steadily where the seed's loop stalls and jumps (measured: the seed's best loss of 300 evaluations
    reached in ~155 instead of never, at 128 px). The loss and the clamp are unchanged.

    Ctrl-C (KeyboardInterrupt) ends the loop early with ``interrupted=True``; the image so far is kept.
    A loss that becomes inf/NaN (e.g. an absurd style weight) ends it with ``diverged=True`` and the last
    image whose loss was finite. The image is clamped to [0, 1] at the end, as in the seed.

    ``line_search="strong_wolfe"`` uses torch's line search (the seed uses none: fixed steps, which can blow
    up when the clamp fights them, as with normalized losses). It evaluates several times per iteration,
    so when ``steps`` runs out inside one the image of the last evaluation is kept.
    """
    image.requires_grad_(True)
    model.requires_grad_(False)
    optimizer = torch.optim.LBFGS([image], max_iter=max_iter, history_size=history_size, line_search_fn=line_search)
    result = OptimizeResult(image=image)
    last_finite = image.detach().clone()
    start = time.perf_counter()
    spent = False

    def closure() -> torch.Tensor:
        if len(result.history) >= steps:
            raise _BudgetSpent
        content_score, style_score = evaluate(model, content_losses, style_losses, image, style_weight, content_weight)
        loss = style_score + content_score
        record = StepRecord(len(result.history) + 1, time.perf_counter() - start, *_values(content_score, style_score, loss))
        if not math.isfinite(record.total):
            raise _Diverged
        last_finite.copy_(image.detach())
        loss.backward()
        if project:
            with torch.no_grad():  # a pixel at a bound is not asked to move further out: clamping would undo it
                g = image.grad
                g.masked_fill_(((image <= 0) & (g > 0)) | ((image >= 1) & (g < 0)), 0)
        result.history.append(record)
        if on_step is not None:
            on_step(record)
        return loss

    try:
        while len(result.history) < steps:
            allowed = optimizer.param_groups[0]["max_iter"] = min(max_iter, steps - len(result.history))
            if line_search:  # it makes several evaluations per iteration: cap them (torch's default is 1.25x)
                optimizer.param_groups[0]["max_eval"] = allowed
            before = len(result.history)
            optimizer.step(closure)
            # One evaluation although more were allowed: the gradient is ~0 and LBFGS will not move again.
            if len(result.history) - before == 1 and allowed > 1:
                result.converged = True
                break
    except KeyboardInterrupt:
        result.interrupted = True
    except _Diverged:
        result.diverged = True
    except _BudgetSpent:  # mid line search, the image is a trial point: keep the last evaluated one instead
        spent = True
    with torch.no_grad():
        if result.diverged or spent:
            image.copy_(last_finite)
        image.clamp_(0, 1)
    result.image = image.detach()
    return result
