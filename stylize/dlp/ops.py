"""The fused kernels as ``torch.library`` custom ops with registered autograd (the seed's ``my_sin`` Function,
done the way a backend does it): ``dlp::gram``, ``dlp::gram_mse`` and ``dlp::conv2d_relu``.

Each op's implementation *is* the device kernel: on a DLPTensor the dispatcher sends it to the kernel table,
on host tensors it runs the same kernel directly (which is how the tests hold it against ``gradcheck``).
Their references are ``stylize.losses.gram_matrix`` / ``style_loss`` and ``relu(conv2d(...))``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import device
from .kernels import conv, matmul


@torch.library.custom_op("dlp::gram", mutates_args=())
def gram(features: Tensor) -> Tensor:
    """``F Fᵀ / (a·b·c·d)`` for (a, b, c, d) features: the seed's ``gram_matrix`` in one kernel."""
    return matmul.gram(features)


@gram.register_fake
def _(features):
    a, b = features.shape[:2]
    return features.new_empty((a * b, a * b))


def _gram_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _gram_backward(ctx, grad):
    (features,) = ctx.saved_tensors
    return torch.ops.dlp.gram_backward(grad, features)


@torch.library.custom_op("dlp::gram_backward", mutates_args=())
def gram_backward(grad: Tensor, features: Tensor) -> Tensor:
    return matmul.gram_backward(grad, features)


@torch.library.custom_op("dlp::gram_mse", mutates_args=())
def gram_mse(features: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Fused style loss ``mean((gram(F) - T)²)``; also returns the residual ``gram(F) - T`` for backward."""
    return matmul.gram_mse(features, target)


@gram_mse.register_fake
def _(features, target):
    return features.new_empty(()), target.new_empty(target.shape)


def _gram_mse_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output[1])
    ctx.mark_non_differentiable(output[1])


def _gram_mse_backward(ctx, grad, _grad_residual):
    features, residual = ctx.saved_tensors
    d_features = torch.ops.dlp.gram_mse_backward(grad, features, residual) if ctx.needs_input_grad[0] else None
    d_target = residual * (grad * (-2.0 / residual.numel())) if ctx.needs_input_grad[1] else None
    return d_features, d_target


@torch.library.custom_op("dlp::gram_mse_backward", mutates_args=())
def gram_mse_backward(grad: Tensor, features: Tensor, residual: Tensor) -> Tensor:
    return matmul.gram_mse_backward(grad, features, residual)


@torch.library.custom_op("dlp::conv2d_relu", mutates_args=())
def conv2d_relu(x: Tensor, weight: Tensor, bias: Tensor, padding: int) -> Tensor:
    """``relu(conv2d(x, weight, bias, padding=padding))`` with bias and ReLU in the conv's epilogue."""
    return conv.conv2d(x, weight, bias, (padding, padding), relu=True, name="conv2d+relu")


@conv2d_relu.register_fake
def _(x, weight, bias, padding):
    n, _, h, w = x.shape
    cout, _, kh, kw = weight.shape
    return x.new_empty((n, cout, h + 2 * padding - kh + 1, w + 2 * padding - kw + 1))


def _conv_relu_setup(ctx, inputs, output):
    x, weight, bias, padding = inputs
    ctx.padding = padding
    ctx.save_for_backward(x, weight, output)


def _conv_relu_backward(ctx, grad):
    x, weight, out = ctx.saved_tensors
    g = torch.ops.aten.threshold_backward(grad, out, 0)  # the ReLU's mask, on the vector unit
    p = ctx.padding
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
    gx, gw, gb = torch.ops.aten.convolution_backward(g, x, weight, [weight.shape[0]], [1, 1], [p, p], [1, 1],
                                                      False, [0, 0], 1, mask)
    return gx, gw, gb, None


gram.register_autograd(_gram_backward, setup_context=_gram_setup)
gram_mse.register_autograd(_gram_mse_backward, setup_context=_gram_mse_setup)
conv2d_relu.register_autograd(_conv_relu_backward, setup_context=_conv_relu_setup)

# On the device, the custom ops go through the kernel table like any aten op.
for _op, _kernel in ((torch.ops.dlp.gram.default, matmul.gram),
                     (torch.ops.dlp.gram_backward.default, matmul.gram_backward),
                     (torch.ops.dlp.gram_mse.default, matmul.gram_mse),
                     (torch.ops.dlp.gram_mse_backward.default, matmul.gram_mse_backward),
                     (torch.ops.dlp.conv2d_relu.default,
                      lambda x, w, b, p: conv.conv2d(x, w, b, (p, p), relu=True, name="conv2d+relu"))):
    device.register_kernel(_op, _kernel)
