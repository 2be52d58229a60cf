"""dlp-sim runs the whole loop on the device: no host fallbacks for the default and the untrained recipe, in
every numerics mode, and no weight gradients (only the image is optimized)."""

from __future__ import annotations

import pytest
import torch

from stylize import configs, stylize
from stylize.dlp import device


def _untrained_config():
    from importlib import resources

    return str(resources.files(configs) / "untrained.yaml")


@pytest.mark.parametrize("mode", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("recipe", ["default", "untrained"])
def test_loop_has_no_host_fallbacks(pair, recipe, mode, monkeypatch):
    """The untrained recipe's strong-Wolfe line search used to fall back for ``aten.rsub`` (``1 - t``)."""
    weight_grads = []
    conv_backward = device.KERNELS[torch.ops.aten.convolution_backward.default]

    def spy(*args):
        weight_grads.append(bool(args[-1][1] or args[-1][2]))  # output_mask: (input, weight, bias)
        return conv_backward(*args)

    monkeypatch.setitem(device.KERNELS, torch.ops.aten.convolution_backward.default, spy)
    content, style = pair
    extra = {"config": _untrained_config()} if recipe == "untrained" else {}
    r = stylize(content, style, weights="untrained", size=32, steps=6, write=False, device="dlp-sim", dlp_mode=mode, **extra)
    profile = r.profile.as_dict()
    assert profile["fallbacks"] == {} and profile["totals"]["fallbacks"] == 0
    assert profile["ops"]["conv2d.input_grad"]["calls"] > 0  # the image gradient did run on the device ...
    assert weight_grads and not any(weight_grads)  # ... and no conv was asked for a weight or bias gradient
    if recipe == "untrained":
        assert profile["ops"]["rsub"]["calls"] > 0  # the line search's op now runs on the vector unit
