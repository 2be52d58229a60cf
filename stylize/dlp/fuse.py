"""Graph-level fusion for the device: a Conv2d followed directly by a ReLU becomes one ``dlp::conv2d_relu``.

A loss module that observes the conv's output (e.g. a style loss at ``conv_1``) keeps the pair apart: the
pre-activation must then reach DRAM anyway. Module names stay (the ReLU becomes an Identity).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvReLU(nn.Module):
    """``relu(conv(x))`` as the fused device kernel (bias and ReLU in the conv's epilogue)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return torch.ops.dlp.conv2d_relu(x, c.weight, c.bias, c.padding[0])


def fusable(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.bias is not None and conv.stride == (1, 1) and conv.groups == 1
            and conv.dilation == (1, 1) and conv.padding[0] == conv.padding[1] and conv.padding_mode == "zeros")


def fuse_conv_relu(model: nn.Sequential) -> int:
    """Fuse in place every Conv2d immediately followed by a ReLU; returns how many pairs were fused."""
    names = list(model._modules)
    fused = 0
    for first, second in zip(names, names[1:]):
        conv, relu = model._modules[first], model._modules[second]
        if fusable(conv) and isinstance(relu, nn.ReLU):
            model._modules[first] = ConvReLU(conv)
            model._modules[second] = nn.Identity()
            fused += 1
    return fused
