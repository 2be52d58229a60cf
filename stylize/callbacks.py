"""What happens around the optimization: the caller's :class:`Callbacks`, and the run's own per-step actions
(:class:`RunHooks`: intermediate images, TensorBoard, checkpoints)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import board, checkpoint, colors, images
from .config import Config
from .errors import StylizeError
from .optimize import LoopState, StepRecord
from .outputs import AtomicFiles
from .schedule import Stage

log = logging.getLogger("stylize")


class Callbacks:
    """What a caller of :func:`stylize.transfer.run` hears; override what you need (each does nothing here)."""

    def plan(self, stages: list[Stage]) -> None:
        """The run's schedule, before the first stage: e.g. for a progress bar over all its evaluations."""

    def step(self, record: StepRecord) -> None:
        """One closure evaluation's losses."""


class StepFunction(Callbacks):
    """A plain function of each :class:`StepRecord` as callbacks (the Python API's ``on_step``)."""

    def __init__(self, on_step):
        self.on_step = on_step

    def step(self, record: StepRecord) -> None:
        self.on_step(record)


class RunHooks:
    """What happens at each step besides optimizing: the caller's callbacks, intermediate images
    (``save_every``), TensorBoard, and checkpoints (``checkpoint_every``; the last one again on Ctrl-C)."""

    def __init__(self, cfg: Config, output: Path, ckpt: Path, identity: dict[str, Any], write: bool,
                 callbacks: Callbacks):
        self.cfg, self.output, self.ckpt, self.write, self.callbacks = cfg, output, ckpt, write, callbacks
        self.identity = identity  # what a checkpoint records of the run besides its config: inputs, weights
        self.board = board.Board(cfg.tensorboard) if cfg.tensorboard and write else None
        self.image: torch.Tensor | None = None  # the image being optimized (changed in place by the loop)
        self.stage, self.earlier, self.latest, self.saved_step = 0, [], None, 0
        self.content: torch.Tensor | None = None

    def start_stage(self, k: int, earlier: list[StepRecord], model: nn.Module | None, content: torch.Tensor,
                    image: torch.Tensor) -> None:
        self.stage, self.earlier, self.content, self.image = k, list(earlier), content, image
        if self.board is not None and k == 0 and model is not None:
            self.board.graph(model, content)

    def step(self, record: StepRecord) -> None:
        self.callbacks.step(record)
        if self.board is not None:
            self.board.step(record)
        every = self.cfg.save_every or self.cfg.log_every
        if self.board is not None and record.step % every == 0:
            self.board.image(record.step, self._shown())
        if self.write and self.cfg.save_every and record.step % self.cfg.save_every == 0:
            path = step_path(self.output, record.step)
            try:
                with AtomicFiles() as files:
                    images.save_image(self._shown(), files.stage(path), path)
            except StylizeError as e:  # a full disk: an intermediate image is not worth the run
                log.warning("--save-every: %s; the run goes on.", e)

    def _shown(self) -> torch.Tensor:
        image = self.image.detach().clamp(0, 1)
        return colors.original_colors(image, self.content) if self.cfg.original_colors else image

    @property
    def checkpoints(self) -> bool:
        """Whether the loop should hand :meth:`boundary` its state (a snapshot: image-sized clones, so not at all
        when nothing is saved)."""
        return bool(self.write and self.cfg.checkpoint_every)

    def boundary(self, state: LoopState) -> None:
        self.latest = (self.stage, self.earlier, state)
        step = len(self.earlier) + len(state.history)
        if step - self.saved_step >= self.cfg.checkpoint_every:
            self._save()

    def _save(self) -> None:
        stage, earlier, state = self.latest
        checkpoint.save(self.ckpt, checkpoint.portable(self.cfg), self.identity["inputs"], self.identity["weights"],
                        stage, earlier, state, plan=self.identity.get("plan"))
        self.saved_step = len(earlier) + len(state.history)

    def save_last_checkpoint(self) -> None:
        """On Ctrl-C: the state after the last complete optimizer step, if newer than the last checkpoint."""
        if self.latest is not None and len(self.latest[1]) + len(self.latest[2].history) > self.saved_step:
            self._save()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def step_path(output: Path, step: int) -> Path:
    """``<stem>.stepNNNN<suffix>``: the image ``save_every`` writes at ``step``."""
    return Path(f"{output.with_suffix('')}.step{step:04d}{output.suffix}")
