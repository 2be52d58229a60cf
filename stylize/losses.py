"""The losses of Gatys et al. as in the seed: pure functions, plus thin modules that hold targets.

The modules are the seed's ``ContentLoss``/``StyleLoss``: inserted into the network, they pass their
input through unchanged and record ``self.loss`` as a side effect.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (a, b, c, d) features, divided by a*b*c*d as in the seed.

    Returns:
        (a*b, a*b) tensor ``F F^T / (a*b*c*d)`` with ``F`` the features reshaped to (a*b, c*d).
    """
    if features.device.type == "dlp":  # the simulated DLP's fused kernel (stylize/dlp/ops.py)
        return torch.ops.dlp.gram(features)
    a, b, c, d = features.size()
    f = features.reshape(a * b, c * d)  # (a*b, c*d)
    return torch.mm(f, f.t()).div(a * b * c * d)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between features and the content target (the seed's ``F.mse_loss``)."""
    return F.mse_loss(features, target)


def style_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the features' Gram matrix and the style target's Gram matrix."""
    if features.device.type == "dlp":  # one fused gram+MSE kernel on the simulated DLP (stylize/dlp/ops.py)
        return torch.ops.dlp.gram_mse(features, target_gram)[0]
    return F.mse_loss(gram_matrix(features), target_gram)


class ContentLoss(nn.Module):
    """Records ``weight * content_loss(input, target)`` in ``self.loss``; returns its input."""

    def __init__(self, target: torch.Tensor, weight: float = 1.0):
        super().__init__()
        self.register_buffer("target", target.detach())
        self.weight = weight
        self.loss = torch.zeros(())

    def set_target(self, features: torch.Tensor) -> None:
        self.target = features.detach()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = self.weight * content_loss(input, self.target)
        return input


class StyleLoss(nn.Module):
    """Records ``weight * style_loss(input, gram(target_features))`` in ``self.loss``; returns its input."""

    def __init__(self, target_features: torch.Tensor, weight: float = 1.0):
        super().__init__()
        self.register_buffer("target", gram_matrix(target_features).detach())
        self.weight = weight
        self.loss = torch.zeros(())

    def set_target(self, features: torch.Tensor) -> None:
        self.target = gram_matrix(features).detach()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = self.weight * style_loss(input, self.target)
        return input
