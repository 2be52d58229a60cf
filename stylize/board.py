"""TensorBoard logging of a run (the seed's ``SummaryWriter`` slides): each loss term as a scalar per step,
the image every N steps, and the style model's graph. Needs the optional extra: ``pip install 'stylize[tensorboard]'``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import StylizeError
from .optimize import StepRecord


class Board:
    """A ``SummaryWriter`` in ``logdir``; :meth:`step` per evaluation, :meth:`image` when one is to be shown."""

    def __init__(self, logdir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise StylizeError("--tensorboard needs the tensorboard package: pip install 'stylize[tensorboard]' "
                               "(or drop --tensorboard).") from None
        try:
            self.writer = SummaryWriter(str(logdir))
        except OSError as e:
            raise StylizeError(f"cannot write TensorBoard logs to {logdir}: {e.strerror}. Choose another folder.") from None

    def graph(self, model: nn.Module, image: torch.Tensor) -> None:
        """The style model as traced on ``image`` (the plain, unfused graph: the seed's modules by name)."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing warns that the loss modules' side effects are not traced
            self.writer.add_graph(model, image.detach(), use_strict_trace=False)

    def step(self, record: StepRecord) -> None:
        for name in ("content", "style", "tv", "total"):
            self.writer.add_scalar(f"loss/{name}", getattr(record, name), record.step)
        self.writer.add_scalar("size", record.size, record.step)

    def image(self, step: int, image: torch.Tensor) -> None:
        self.writer.add_image("image", image.detach().squeeze(0).clamp(0, 1).cpu(), step)

    def close(self) -> None:
        self.writer.close()
