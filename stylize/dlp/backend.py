"""dlp-sim as a backend of the pipeline (:mod:`stylize.devices`): the seed's graph on the simulated DLP's kernels.

Importing this module registers the device (``import stylize.dlp``). The backend configures the device's spec
and numerics mode from the run's config, moves the network there, builds each stage's :class:`DlpObjective`
(the seed's graph with the device's fused Gram+MSE loss and conv+ReLU kernels), calibrates int8 from a
``stylize quantize`` artefact, and hands back the profile of the optimization.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from ..config import Config
from ..devices import Backend
from ..errors import StylizeError
from ..losses import StyleLoss, blended_gram
from ..objective import GraphObjective, LossWeights, normalized, style_model
from . import runtime
from .device import DEVICE
from .fuse import fuse_conv_relu

log = logging.getLogger("stylize")

REGIONS_REFUSED = ("regions: dlp-sim has no masked (guided) Gram kernel; run regional styles with --device cpu "
                   "or cuda.")

LATE_DEVICE = ("dlp-sim cannot run a backward in this process: PyTorch's autograd engine sized its device queues at "
               "the process's first backward, before the dlp device was registered. Import stylize (or stylize.dlp) "
               "before any backward, or run in a fresh process.")


def _check_autograd() -> None:
    """A backward through one dlp tensor, so that a process whose autograd started before the device was
    registered hears it in one line (torch's own message is an internal assert in engine.cpp)."""
    x = torch.ones(1, device=DEVICE, requires_grad=True)
    try:
        (x * 2).sum().backward()
    except RuntimeError as e:
        if "device_ready_queues_" in str(e):
            raise StylizeError(LATE_DEVICE) from None
        raise


class DlpStyleLoss(StyleLoss):
    """The seed's style loss on the device's kernels: the target by ``dlp::gram``, the loss by one fused
    ``dlp::gram_mse`` whose Gram matrix never goes to DRAM (:mod:`stylize.dlp.ops`)."""

    def _gram(self, features: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(features, torch.Tensor):
            return torch.ops.dlp.gram(features).detach()
        return blended_gram([f.detach() for f in features], self.blend, gram=torch.ops.dlp.gram)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = self.weight * torch.ops.dlp.gram_mse(input, self.target)[0]
        return input


class DlpObjective(GraphObjective):
    """The seed's graph on dlp-sim: conv+ReLU pairs fused for the device, style losses by its Gram kernels."""

    trace_one = False  # the run's first objective: its first evaluation is the profile's timeline

    def backward(self, terms) -> None:
        super().backward(terms)
        if self.trace_one:  # one evaluation, forward and backward, is what the timeline shows
            self.trace_one = False
            runtime.current().profile.stop_trace()

    @classmethod
    def build(cls, net: nn.Module, content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: Config) -> "DlpObjective":
        model, content_losses, style_losses = style_model(net, content, styles, cfg, style_loss=DlpStyleLoss)
        normalized(cfg, content_losses, style_losses)
        fuse_conv_relu(model)
        return cls(model, content_losses, style_losses, LossWeights.of(cfg))


class DlpBackend(Backend):
    """The simulated deep-learning processor (``--device dlp-sim``)."""

    def __init__(self, cfg: Config):
        _check_autograd()
        self.device = DEVICE
        self.profile = runtime.configure(cfg.dlp_spec, cfg.dlp_mode)
        self.net: nn.Module | None = None
        self.qparams: dict | None = None
        self.started = False

    @property
    def name(self) -> str:
        return "dlp-sim"

    def describe(self) -> str:
        rt = runtime.current()
        return f"dlp-sim ({rt.spec.name} spec, {rt.mode})"

    def prepare(self, net: nn.Module, qparams: dict | None = None) -> nn.Module:
        self.net, self.qparams = net.to(self.device).eval(), qparams
        if qparams:  # calibrated int8 for the targets too
            self._calibrate()
        return self.net

    def objective(self, net: nn.Module, content: torch.Tensor, styles: Sequence[torch.Tensor], cfg: Config,
                  regions=None, tile: int | None = None) -> DlpObjective:  # tile: the host's memory plan; not planned here
        if regions is not None:  # the config refuses it first (config._validate); a Python caller hears it here
            raise StylizeError(REGIONS_REFUSED)
        objective = DlpObjective.build(net, content, styles, cfg)
        if not self.started:  # the profile covers the optimization only: start it afresh after the first targets
            self.started = True
            rt = runtime.current()
            self.profile = runtime.configure(rt.spec, rt.mode)
            objective.trace_one = True
            if self.qparams:  # a fresh profile forgets the calibration: set it again
                n = self._calibrate()
                log.info("dlp-sim: calibrated int8 scales for %d convs%s", n,
                         "" if rt.mode == "int8" else " (used only with --dlp-mode int8)")
        return objective

    def _calibrate(self) -> int:
        """dlp-sim's int8 mode: quantize the convs with the artefact's calibrated scales."""
        net = self.net
        return runtime.calibrate([(net[i].weight, q) for i, q in self.qparams.items() if i < len(net)])

    def simulated_seconds(self) -> float:
        return runtime.current().profile.sim_s

    def finish(self, steps: int, host_s: float):
        self.profile.steps, self.profile.host_s = steps, host_s
        return self.profile
