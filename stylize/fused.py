"""The fast path: the seed's style model, fused into one autograd op per conv layer.

:func:`features.build_style_model` builds the seed's graph: ``conv_N``, its loss modules, ``relu_N``, and
autograd differentiates every piece. Profiled at 512 px on a 2-core CPU that graph spends its time in
convolutions, in three ``mm`` per Gram matrix (forward, plus two in ``MmBackward``), and in memory-bound
glue: ReLU and its backward, gradient adds where a tapped tensor has two consumers, zero fills, and the
page faults of allocating all that afresh at every evaluation.

:func:`fuse` rewrites the model, the way a framework's graph compiler would, into :class:`ConvBlock`
modules, each running ``conv -> losses on its output -> ReLU -> losses on that`` as ONE
:class:`torch.autograd.Function` with a hand-written backward:

* the conv is NNPACK's Winograd 3x3 convolution where the CPU build has it (1.4-2.2x oneDNN's direct
  conv here, ~1e-5 relative error), else ``F.conv2d`` (channels_last on CUDA). Its backward needs only the
  input gradient (the weights are frozen), which is the same conv with the flipped, transposed kernel;
  so nothing but the tensors the losses and the ReLU mask need is kept for backward;
* the style loss is Gram + MSE with its analytic backward, one ``mm``:
  ``d/dF [w/C^2 * sum((F F^T/N - T)^2)] = 4w/(C^2 N) * (F F^T/N - T) F``  (the Gram is symmetric);
* the content loss gradient ``2w/numel * (F - T)``, the ReLU mask and the incoming gradient are summed in
  place into one buffer, so a tapped tensor costs no extra gradient add.

The losses are the seed's, to float rounding: ``tests/test_fused.py`` holds the fused model's losses and
gradients to the plain model's. The loss modules stay in the model (each block calls them for their
targets and weights, and sets their ``.loss``), so the optimization loop cannot tell the two apart.
``exact: true`` in the config skips :func:`fuse` and runs the seed's graph as built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .losses import ContentLoss, StyleLoss

Tap = ContentLoss | StyleLoss


NNPACK_MIN_PIXELS = 40 * 40  # below this, transforming the kernel at every call costs more than Winograd saves


def _nnpack(x: torch.Tensor) -> bool:
    """NNPACK's Winograd conv serves large CPU float32 maps when this torch build has it.

    Measured single-threaded against oneDNN (channels_last) here: 1.2x at 64 channels and 48x48 px, 2-3x at
    256-512 channels and 48x48 px or more, but 0.2-0.9x below 32x32 px.
    """
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.shape[-1] * x.shape[-2] >= NNPACK_MIN_PIXELS
            and torch._nnpack_available())


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A VGG conv (3x3, stride 1, padding 1) by the fastest kernel for ``x``: NNPACK on large CPU maps; cuDNN
    in channels_last (its tensor-core layout) on CUDA; else oneDNN as the seed's graph calls it (on small CPU
    maps, converting to channels_last at every call costs more than it saves)."""
    if _nnpack(x):
        return torch._nnpack_spatial_convolution(x.contiguous(), weight, bias, [1, 1])
    if x.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, weight, bias, padding=1)


def as_matrix(x: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> its (C, H*W) matrix, as a view in either memory format (NCHW or channels_last)."""
    c = x.shape[1]
    if x.is_contiguous():
        return x.view(c, -1)
    return x.permute(0, 2, 3, 1).reshape(-1, c).t()  # channels_last: a view of (H*W, C), transposed


def _like(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`as_matrix` for a freshly computed (C, H*W) result, in ``x``'s memory format."""
    if x.is_contiguous():
        return matrix.view(x.shape)
    n, c, h, w = x.shape
    return matrix.t().reshape(n, h, w, c).permute(0, 3, 1, 2)


def style_loss_and_grad_factor(f: torch.Tensor, target: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight * mse(gram(f), target)`` as the seed computes it, and ``D = G - T`` for the backward."""
    c, n = f.shape[1], f.numel()
    m = as_matrix(f)
    d = torch.mm(m, m.t()).div_(n).sub_(target)  # G - T
    return d.square().sum().mul_(weight / (c * c)), d


class _ConvBlockFn(torch.autograd.Function):
    """``y = relu(conv(x))`` (or no relu), and the losses of the taps on the conv output and on ``y``."""

    @staticmethod
    def forward(ctx, x, weight, weight_t, bias, block: "ConvBlock"):
        ctx.set_materialize_grads(False)  # an unused output (the last block's y) gets None, not zeros
        f = conv3x3(x, weight, bias)
        ds: dict[int, torch.Tensor] = {}  # G - T per style tap, for backward
        losses = _tap_losses(f, block.pre, ds)
        y = (f.relu() if block.pre else f.relu_()) if block.relu else f  # pre taps need f kept as it is
        losses += _tap_losses(y, block.post, ds)
        # Keep only what backward needs: f for the pre taps (its sign is the ReLU mask too), y for the post
        # taps or the mask. The conv itself needs nothing: its weights are frozen.
        keep_y = bool(block.post) or (block.relu and not block.pre)
        ctx.save_for_backward(f if block.pre else None, y if keep_y else None, weight_t)
        ctx.block, ctx.ds = block, ds
        return (y, *losses)

    @staticmethod
    def backward(ctx, g_y, *g_losses):
        f, y, weight_t = ctx.saved_tensors
        block: ConvBlock = ctx.block
        n_pre = len(block.pre)
        g, owned = _add_tap_grads(g_y, False, y, block.post, g_losses[n_pre:], ctx.ds)
        if block.relu and g is not None:  # ReLU's backward: one pass, no mask tensor
            g = torch.ops.aten.threshold_backward(g, f if f is not None else y, 0)
            owned = True
        g, _ = _add_tap_grads(g, owned, f, block.pre, g_losses[:n_pre], ctx.ds)
        if g is None or not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        return conv3x3(g, weight_t, None), None, None, None, None


def _tap_losses(f: torch.Tensor, taps: Sequence[Tap], ds: dict[int, torch.Tensor]) -> list[torch.Tensor]:
    losses = []
    for tap in taps:
        if isinstance(tap, StyleLoss):
            loss, ds[id(tap)] = style_loss_and_grad_factor(f, tap.target, tap.weight)
        else:
            loss = F.mse_loss(f, tap.target) * tap.weight
        losses.append(loss)
    return losses


def _add_tap_grads(g, owned: bool, f, taps: Sequence[Tap], g_losses, ds: dict) -> tuple[torch.Tensor | None, bool]:
    """``g + sum of g_loss * d(loss)/d(f)`` over the taps on ``f``.

    Accumulates in place into a buffer we own (``addmm_`` for a style tap), so a tapped layer costs no extra
    activation-sized buffer: at 512 px that is 89 MB less at the peak, and 89 MB fewer fresh pages per step.
    """
    for tap, g_loss in zip(taps, g_losses):
        if g_loss is None:
            continue
        c = f.shape[1]
        if isinstance(tap, StyleLoss):
            d = ds[id(tap)] * (g_loss * (4 * tap.weight / (c * c * f.numel())))
            if owned:
                as_matrix(g).addmm_(d, as_matrix(f))
                continue
            grad = _like(torch.mm(d, as_matrix(f)), f)
        else:
            k = g_loss * (2 * tap.weight / f.numel())
            if owned:
                g.addcmul_(f, k).addcmul_(tap.target, -k)  # k is a 0-d tensor: no host sync
                continue
            grad = (f - tap.target).mul_(k)
        g, owned = (grad if g is None else grad.add_(g)), True
    return g, owned


class ConvBlock(nn.Module):
    """The seed's ``conv_N`` [its loss modules] [``relu_N`` [its loss modules]], as one fused op."""

    def __init__(self, conv: nn.Conv2d, relu: bool, pre: list[Tap], post: list[Tap]):
        super().__init__()
        self.conv, self.relu = conv, relu
        self.pre, self.post = nn.ModuleList(pre), nn.ModuleList(post)
        # The input gradient of a stride-1 'same' conv is the conv of the output gradient with this kernel.
        self.register_buffer("weight_t", conv.weight.detach().transpose(0, 1).flip(2, 3).contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _capture is not None:  # retarget(): hand the taps their features, compute no loss
            f = conv3x3(x, self.conv.weight, self.conv.bias)
            y = f.relu() if self.relu else f
            for taps, feats in ((self.pre, f), (self.post, y)):
                for tap in taps:
                    _capture(tap, feats)
            return y
        y, *losses = _ConvBlockFn.apply(x, self.conv.weight, self.weight_t, self.conv.bias, self)
        for tap, loss in zip([*self.pre, *self.post], losses):
            tap.loss = loss
        return y


_capture = None  # set by retarget(): called with (loss module, its input features)


def retarget(model: nn.Sequential, content: torch.Tensor, style: torch.Tensor | Sequence[torch.Tensor]) -> None:
    """Recompute every loss module's target through ``model``'s own kernels (``style``: one image or several,
    blended as the style modules' ``blend`` says).

    The targets :func:`features.build_style_model` computed came from the plain graph; the fused blocks' convs
    round differently (~1e-5), which would leave the content image a content loss of ~1e-12 instead of 0.
    """
    global _capture
    seen: dict[Tap, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.__setitem__(m, args[0]))
             for m in model if isinstance(m, (ContentLoss, StyleLoss))]  # loss modules outside the blocks
    _capture = seen.__setitem__
    styles = [style] if isinstance(style, torch.Tensor) else list(style)
    try:
        with torch.no_grad():
            feats: dict[Tap, list[torch.Tensor]] = {}
            for image, kind in ((content, ContentLoss), *((s, StyleLoss) for s in styles)):
                seen.clear()
                model(image)
                for tap, f in seen.items():
                    if isinstance(tap, kind):
                        feats.setdefault(tap, []).append(f)
            for tap, fs in feats.items():
                tap.set_target(fs[0] if isinstance(tap, ContentLoss) else fs)
    finally:
        _capture = None
        for hook in hooks:
            hook.remove()


def fuse(model: nn.Sequential, content: torch.Tensor | None = None,
         style: torch.Tensor | Sequence[torch.Tensor] | None = None) -> nn.Sequential:
    """The seed's model with each ``conv_N [losses] [relu_N [losses]]`` run replaced by a :class:`ConvBlock`.

    ``Normalization``, pools and loss modules after a pool stay as they are (autograd runs them). The
    blocks keep the conv's name, and hold the very loss modules of the plain model, whose ``.loss`` they set.
    Given the content and style images, the targets are recomputed through the fused kernels (:func:`retarget`).
    """
    items = list(model.named_children())
    fused, i = nn.Sequential(), 0
    while i < len(items):
        name, module = items[i]
        if not isinstance(module, nn.Conv2d):
            fused.add_module(name, module)
            i += 1
            continue
        i, pre = _taps(items, i + 1)
        relu = i < len(items) and isinstance(items[i][1], nn.ReLU)
        post: list[Tap] = []
        if relu:
            i, post = _taps(items, i + 1)
        fused.add_module(name, ConvBlock(module, relu, pre, post))
    if content is not None and style is not None:
        retarget(fused, content, style)
    return fused


def _taps(items: list[tuple[str, nn.Module]], i: int) -> tuple[int, list[Tap]]:
    """The loss modules from ``items[i]`` on, and the index after them."""
    taps = []
    while i < len(items) and isinstance(items[i][1], (ContentLoss, StyleLoss)):
        taps.append(items[i][1])
        i += 1
    return i, taps
