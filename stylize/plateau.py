"""When a run stops improving: the plateau rule (``plateau_tol``, ``plateau_window``).

A pure function of one stage's per-evaluation loss totals, so the loop (or a resumed one, whose history is in
its checkpoint) and the tests ask it the same question, and each stage of a coarse-to-fine run (the
high-resolution schedule too) applies it to its own evaluations.

The rule compares the *best* total so far with the best total ``window`` evaluations ago. The best, not the
last: with a line search, LBFGS evaluates trial points above the current loss, and a single total jumps
around; the best so far only falls, and it is the image the blow-up guard returns.
"""

from __future__ import annotations

from collections.abc import Sequence


def plateau(totals: Sequence[float], tol: float, window: int) -> str | None:
    """Why to stop, or None to go on.

    Stop when the best total fell by less than ``tol`` (relative) over the last ``window`` evaluations:
    ``(min(totals[:-window]) - min(totals)) / min(totals[:-window]) < tol``. Needs more than ``window`` totals;
    ``tol <= 0`` turns the rule off.

    Args:
        totals: the stage's loss totals, one per closure evaluation, in order.
        tol: relative improvement below which the stage has plateaued (e.g. 0.01 = 1 %).
        window: evaluations the improvement is measured over (k).

    Returns:
        None, or a one-line reason, e.g. ``"plateau: the best loss fell 0.62% over the last 30 evaluations
        (plateau_tol 0.01)"``.
    """
    if tol <= 0 or window < 1 or len(totals) <= window:
        return None
    before, now = min(totals[:-window]), min(totals)
    if before != before:  # NaN: not a plateau (the blow-up guard deals with it)
        return None
    if before <= 0:  # a zero loss has nothing left to gain
        return f"plateau: the loss reached {before:.4g}"
    gain = (before - now) / before
    if gain >= tol:
        return None
    return f"plateau: the best loss fell {gain:.2%} over the last {window} evaluations (plateau_tol {tol:.4g})"
