"""The fast path: the seed's style model, fused into one autograd op per conv layer.

:func:`features.build_style_model` builds the seed's graph: ``conv_N``, its loss modules, ``relu_N``, and
autograd differentiates every piece. Profiled at 512 px on a 2-core CPU that graph spends its time in
convolutions, in three ``mm`` per Gram matrix (forward, plus two in ``MmBackward``), and in memory-bound
glue: ReLU and its backward, gradient adds where a tapped tensor has two consumers, zero fills, and the
page faults of allocating all that afresh at every evaluation.

:func:`fuse` rewrites the model, the way a framework's graph compiler would, into :class:`ConvBlock`
modules, each running ``conv -> losses on its output -> ReLU -> losses on that [-> max pool]`` as ONE
:class:`torch.autograd.Function` with a hand-written backward, writing into a :class:`Workspace` of buffers
reused across evaluations:

* the conv is NNPACK's Winograd 3x3 convolution where the CPU build has it (1.4-2.2x oneDNN's direct
  conv here, ~1e-5 relative error), else ``F.conv2d`` (channels_last on CUDA). Its backward needs only the
  input gradient (the weights are frozen), which is the same conv with the flipped, transposed kernel;
  so nothing but the tensors the losses and the ReLU mask need is kept for backward;
* the style loss is Gram + MSE with its analytic backward, one ``mm``:
  ``d/dF [w/C^2 * sum((F F^T/N - T)^2)] = 4w/(C^2 N) * (F F^T/N - T) F``  (the Gram is symmetric);
* a masked style loss (regional styles, :class:`~stylize.losses.MaskedStyleLoss`) is a guided Gram per region,
  computed over the pixels its mask covers only (:func:`region_columns`), with the same analytic backward
  per region, weighted by the mask;
* the content loss gradient ``2w/numel * (F - T)``, the ReLU mask and the incoming gradient are summed in
  place into one buffer, so a tapped tensor costs no extra gradient add.

The losses are the seed's, to float rounding: ``tests/test_fused.py`` holds the fused model's losses and
gradients to the plain model's. The loss modules stay in the model (each block calls them for their
targets and weights, and sets their ``.loss``), so the optimization loop cannot tell the two apart.
``exact: true`` in the config skips :func:`fuse` and runs the seed's graph as built.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .losses import ContentLoss, MaskedStyleLoss, StyleLoss

Tap = ContentLoss | StyleLoss


NNPACK_MIN_PIXELS = 40 * 40  # see _nnpack


def _nnpack(x: torch.Tensor) -> bool:
    """NNPACK's Winograd conv serves large CPU float32 maps when this torch build has it.

    Measured single-threaded against oneDNN (channels_last) here: 1.2x at 64 channels and 48x48 px, 2-3x at
    256-512 channels and 48x48 px or more. With 2 threads at 512 channels: 2.6x at 64x85 px, 1.5x at 32x42
    (gatys' conv5_1 at 512 px), 1.1x at 24x32, 0.85x at 24x24. The bar stays at 40x40 all the same: lowered to
    24x32 it gained 1 % of a gatys evaluation at 512 px, but took Winograd's rounding into the deep layers of
    small images, where ill-conditioned tap sets then showed image gradients 1-2 % off (34x36 px).
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
    d = gram_product(as_matrix(f)).div_(n).sub_(target)  # G - T
    return d.square().sum().mul_(weight / (c * c)), d


def region_columns(tap: MaskedStyleLoss, size: tuple[int, int]) -> list[tuple]:
    """Per region present at a layer of ``size``: (its index, its weight, the flat indices of the pixels its mask
    covers, the mask there as a (1, n) row, ``sum m^2``), computed once per size and cached on ``tap``. A region's
    guided Gram only needs its own pixels: over a partition of the image the regions' Grams cost one Gram."""
    cache = tap.__dict__.setdefault("_fused_columns", {})
    if tuple(size) not in cache:
        masks, weights = tap.layer_masks(size)
        regions = []
        for r, (w, m) in enumerate(zip(weights, masks.flatten(1))):
            if w:
                idx = m.nonzero().flatten()
                row = m.index_select(0, idx).view(1, -1)
                regions.append((r, w, idx, row, row.square().sum().item()))
        cache[tuple(size)] = regions
    return cache[tuple(size)]


def masked_style_loss_and_grad_factors(f: torch.Tensor, tap: MaskedStyleLoss) -> tuple[torch.Tensor, list]:
    """``tap``'s guided Gram loss ``weight * sum_r w_r mse(G_r, T_r)`` (:func:`losses.masked_style_loss`), and per
    region what the backward needs. With ``G_r = (F m_r)(F m_r)^T / (C S_r)`` and ``S_r = sum m_r^2``:
    ``d/dF = sum_r 4 weight w_r / (C^3 S_r) * (D_r (F m_r)) * m_r``, ``D_r = G_r - T_r``; only the region's own
    pixels (columns of F) take part."""
    c = f.shape[1]
    loss, factors = f.new_zeros(()), []
    for r, w, idx, row, area in region_columns(tap, f.shape[-2:]):
        fm = as_matrix(f).index_select(1, idx).mul_(row)  # (C, n_r): F m_r over the region's pixels
        d = gram_product(fm).div_(c * area).sub_(tap.target[r])
        loss = loss + d.square().sum() * (tap.weight * w / (c * c))
        factors.append((idx, row, fm, d, 4 * tap.weight * w / (c ** 3 * area)))
    return loss, factors


_ONEDNN_MATMUL = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def gram_product(m: torch.Tensor) -> torch.Tensor:
    """``m @ m.T`` of a (C, N) feature matrix.

    On contiguous CPU float32 this is oneDNN's matmul (the kernel behind ``nn.Linear`` under torch.compile):
    1.6x MKL's ``sgemm`` here at C=64 and N=349k px (182 vs 116 GFLOP/s), 1.2x at C=128..256, ~5e-7 apart.
    """
    if _ONEDNN_MATMUL and m.device.type == "cpu" and m.dtype == torch.float32 and m.is_contiguous():
        return torch.ops.mkldnn._linear_pointwise(m, m, None, "none", [], "")
    return torch.mm(m, m.t())


POOL_ARGS = ([2, 2], [2, 2], [0, 0], [1, 1], False)  # kernel, stride, padding, dilation, ceil_mode: VGG's max pool


def max_pool(x: torch.Tensor, out: torch.Tensor, indices: torch.Tensor) -> None:
    """VGG's 2x2 max pool of ``x`` into ``out``, with the flat index of each maximum into ``indices``: exactly
    ``max_pool2d_with_indices``, whose backward then uses them (a tie goes to the window's first maximum in
    row-major order).

    On a contiguous CPU map it is computed by vectorized elementwise ops on the window's four strided
    quarters: ATen's NCHW kernel scans each window in scalar code (60 ms for 64 channels at 682x512; these
    ops take 46 ms, and 25 vs 34 ms for 128 channels at 341x256). Elsewhere (CUDA, channels_last) the
    native kernel is the fast one.
    """
    if x.device.type != "cpu" or not x.is_contiguous() or x.shape[-1] + 1 >= 2 ** 15:  # int16 offsets below
        torch.ops.aten.max_pool2d_with_indices.out(x, *POOL_ARGS, out=out, indices=indices)
        return
    ho, wo, w = out.shape[-2], out.shape[-1], x.shape[-1]
    top_left, top_right = x[..., 0:2 * ho:2, 0:2 * wo:2], x[..., 0:2 * ho:2, 1:2 * wo:2]
    bottom_left, bottom_right = x[..., 1:2 * ho:2, 0:2 * wo:2], x[..., 1:2 * ho:2, 1:2 * wo:2]
    torch.maximum(top_left, top_right, out=out)
    bottom = torch.maximum(bottom_left, bottom_right)
    # Offset of the maximum within the window (0, 1, w, w + 1); ">" keeps the earlier one on a tie.
    offset = torch.where(bottom > out, torch.gt(bottom_right, bottom_left).to(torch.int16).add_(w),
                         torch.gt(top_right, top_left).to(torch.int16))
    torch.maximum(out, bottom, out=out)
    rows = torch.arange(0, 2 * ho * w, 2 * w, device=x.device).view(-1, 1)
    indices.copy_(offset).add_(rows).add_(torch.arange(0, 2 * wo, 2, device=x.device))


class Workspace:
    """The fast path's memory plan: tensors that live across evaluations.

    A fresh 89 MB tensor (64 channels at 682x512) costs ~25 ms of page faults here, six times the ReLU that fills
    it (~4 ms): glibc maps every allocation over 32 MB afresh and the kernel zeroes it. So the blocks write their
    memory-bound results (ReLU, pooling, the pooled layer's gradient) into these buffers instead:

    * ``saved(...)`` buffers, one per block and role, for what a graph keeps for its backward (a pool's output
      and indices, a ReLU output). A buffer is lent to one graph at a time: from the forward that fills it until
      that graph no longer holds its saved tensors (its backward freed them, or the graph was dropped). A
      forward while it is lent (gradcheck's, a second graph built before the first's backward, a graph kept
      with ``retain_graph``) gets a fresh tensor, as without a workspace.
    * ``scratch(...)`` buffers, one per shape, shared by all blocks, for what lives within one call: a ReLU
      output the next block's conv consumes at once, and, in backward, the gradient a pooled block hands to
      its conv.

    Blocks get ``buffer.detach()`` aliases, which share the buffer's version counter: were a buffer overwritten
    while a graph still needed it, autograd's saved-tensor check would fail loudly rather than silently.
    """

    def __init__(self):
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._lent: dict[tuple, weakref.ref] = {}  # buffer key -> the autograd ctx of the graph it was lent to

    def saved(self, ctx, key: tuple, shape, like: torch.Tensor, dtype=None) -> torch.Tensor:
        holder = self._lent.get(key)
        if holder is not None and _holds_saved_tensors(holder()):
            return torch.empty(shape, dtype=dtype or like.dtype, device=like.device, memory_format=_layout(like))
        self._lent[key] = weakref.ref(ctx)
        return self._get(key, shape, like, dtype)

    def scratch(self, shape, like: torch.Tensor) -> torch.Tensor:
        return self._get(("scratch", tuple(shape)), shape, like, None)

    def _get(self, key: tuple, shape, like: torch.Tensor, dtype) -> torch.Tensor:
        dtype, layout = dtype or like.dtype, _layout(like)
        buf = self._buffers.get(key)
        if (buf is None or buf.shape != tuple(shape) or buf.dtype != dtype or buf.device != like.device
                or not buf.is_contiguous(memory_format=layout)):
            buf = self._buffers[key] = torch.empty(shape, dtype=dtype, device=like.device, memory_format=layout)
        return buf.detach()


def _holds_saved_tensors(ctx) -> bool:
    """Whether a block's graph can still run its backward (autograd frees saved tensors after it, unless
    ``retain_graph``; a dropped graph's ctx is gone)."""
    if ctx is None:
        return False
    try:
        ctx.saved_tensors
    except RuntimeError:  # "Trying to backward through the graph a second time ...": freed
        return False
    return True


def _layout(x: torch.Tensor) -> torch.memory_format:
    """``x``'s memory format: channels_last (the CUDA path's) or contiguous."""
    cl = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl else torch.contiguous_format


class _ConvBlockFn(torch.autograd.Function):
    """``y = [pool](relu(conv(x)))`` (or no relu), and the losses of the taps on the conv output and on the ReLU's.

    With a pool and no taps on the ReLU output, the ReLU runs after the pool, on a quarter of the pixels:
    ``max_pool(relu(f)) == relu(max_pool(f))`` (ReLU is monotone), and the gradients agree too: where the window's
    maximum is positive both route it to the same (first) maximum; where it is not, both give zero.
    """

    @staticmethod
    def forward(ctx, x, weight, weight_t, bias, block: "ConvBlock"):
        ctx.set_materialize_grads(False)  # an unused output (the last block's y) gets None, not zeros
        ws = block.workspace
        f = conv3x3(x, weight, bias)
        ds: dict[int, torch.Tensor] = {}  # G - T per style tap, for backward
        losses = _tap_losses(f, block.pre, ds, ws)
        y = p = idx = None
        if block.relu and (block.post or not block.pool):
            if not block.pre:
                y = f.relu_()  # f itself is not needed
            elif block.post:  # the backward needs y: its own buffer
                y = torch.clamp_min(f, 0, out=ws.saved(ctx, (id(block), "relu"), f.shape, f))
            elif block.feeds_block:  # consumed by the next conv at once
                y = torch.clamp_min(f, 0, out=ws.scratch(f.shape, f))
            else:
                y = f.relu()
            losses += _tap_losses(y, block.post, ds, ws)
        if block.pool:
            src = f if y is None else y
            shape = (*src.shape[:2], src.shape[2] // 2, src.shape[3] // 2)
            p = ws.saved(ctx, (id(block), "pool"), shape, src)
            idx = ws.saved(ctx, (id(block), "indices"), shape, src, torch.int64)
            max_pool(src, p, idx)
            if y is None and block.relu:
                p.relu_()
        out = p if block.pool else (y if block.relu else f)
        # Keep only what backward needs: f for the pre taps (its sign is the ReLU mask when no pool follows),
        # y for the post taps or the mask, the pool's output (mask) and indices. The conv needs nothing: its
        # weights are frozen.
        keep_y = y is not None and (bool(block.post) or (not block.pre and not block.pool))
        ctx.save_for_backward(f if block.pre else None, y if keep_y else None, p, idx, weight_t)
        ctx.block, ctx.ds, ctx.shape = block, ds, f.shape
        return (out, *losses)

    @staticmethod
    def backward(ctx, g_out, *g_losses):
        f, y, p, idx, weight_t = ctx.saved_tensors
        block: ConvBlock = ctx.block
        n_pre = len(block.pre)
        g, owned = g_out, g_out is not None and block.feeds_block  # the next block's fresh conv gradient: ours
        if block.pool and g is not None:
            if y is None and block.relu:  # relu(pool(f)): the ReLU's backward on the pooled map
                g = _relu_backward(g, p, owned)
            g = torch.ops.aten.max_pool2d_with_indices_backward.grad_input(
                g, p.new_empty(()).expand(ctx.shape), *POOL_ARGS, idx,  # the input's shape: all it reads of it
                grad_input=block.workspace.scratch(ctx.shape, g))
            owned = True
        g, owned = _add_tap_grads(g, owned, y, block.post, g_losses[n_pre:], ctx.ds)
        if block.relu and g is not None and (y is not None or not block.pool):  # ReLU's backward at full size
            g, owned = _relu_backward(g, f if f is not None else y, owned), True
        g, _ = _add_tap_grads(g, owned, f, block.pre, g_losses[:n_pre], ctx.ds)
        g_x = conv3x3(g, weight_t, None) if g is not None and ctx.needs_input_grad[0] else None
        return g_x, None, None, None, None


def _relu_backward(g: torch.Tensor, mask_source: torch.Tensor, owned: bool) -> torch.Tensor:
    """``g`` where ``mask_source > 0``, else 0: in place when we own ``g`` (no fresh pages)."""
    if owned:
        return torch.ops.aten.threshold_backward.grad_input(g, mask_source, 0, grad_input=g)
    return torch.ops.aten.threshold_backward(g, mask_source, 0)


def _tap_losses(f: torch.Tensor, taps: Sequence[Tap], ds: dict[int, torch.Tensor], ws: Workspace) -> list[torch.Tensor]:
    losses = []
    for tap in taps:
        if isinstance(tap, MaskedStyleLoss):
            loss, ds[id(tap)] = masked_style_loss_and_grad_factors(f, tap)
        elif isinstance(tap, StyleLoss):
            loss, ds[id(tap)] = style_loss_and_grad_factor(f, tap.target, tap.weight)
        else:  # F.mse_loss's arithmetic (difference, square, sum, / numel), in a scratch buffer
            diff = torch.sub(f, tap.target, out=ws.scratch(f.shape, f))
            loss = diff.square_().sum().div_(diff.numel()) * tap.weight
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
        if isinstance(tap, MaskedStyleLoss):  # sum_r k_r (D_r (F m_r)) m_r, into the region's pixels
            if g is None or not owned or not g.is_contiguous(memory_format=_layout(g)):  # as_matrix(g): a view
                g, owned = (torch.zeros_like(f) if g is None else g.clone(memory_format=_layout(f))), True
            for idx, row, fm, d, k in ds[id(tap)]:
                as_matrix(g).index_add_(1, idx, torch.mm(d * (g_loss * k), fm).mul_(row))
            continue
        elif isinstance(tap, StyleLoss):
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
    """The seed's ``conv_N`` [its loss modules] [``relu_N`` [its loss modules]] [``pool_N``], as one fused op.

    ``feeds_block`` (set by :func:`fuse`): the output goes straight into another block, so its gradient arrives
    fresh and ours to overwrite, and a ReLU output nobody keeps can live in a scratch buffer. (A hook or
    ``retain_grad`` on such an output would see that gradient overwritten; nothing here sets one.) The
    output itself may be a workspace buffer, overwritten by the next evaluation: use it, do not keep it.
    """

    def __init__(self, conv: nn.Conv2d, relu: bool, pre: list[Tap], post: list[Tap], pool: bool = False,
                 workspace: Workspace | None = None):
        super().__init__()
        self.conv, self.relu, self.pool = conv, relu, pool
        self.pre, self.post = nn.ModuleList(pre), nn.ModuleList(post)
        self.workspace = workspace or Workspace()
        self.feeds_block = False
        # The input gradient of a stride-1 'same' conv is the conv of the output gradient with this kernel.
        self.register_buffer("weight_t", conv.weight.detach().transpose(0, 1).flip(2, 3).contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        capture = getattr(_retargeting, "capture", None)
        if capture is not None:  # retarget(): hand the taps their features, compute no loss
            f = conv3x3(x, self.conv.weight, self.conv.bias)
            y = f.relu() if self.relu else f
            for taps, feats in ((self.pre, f), (self.post, y)):
                for tap in taps:
                    capture(tap, feats)
            return F.max_pool2d(y, 2, 2) if self.pool else y
        y, *losses = _ConvBlockFn.apply(x, self.conv.weight, self.weight_t, self.conv.bias, self)
        for tap, loss in zip([*self.pre, *self.post], losses):
            tap.loss = loss
        return y


_retargeting = threading.local()  # .capture, set by retarget() in its thread: called with (loss module, its input)


def retarget(model: nn.Sequential, content: torch.Tensor, style: torch.Tensor | Sequence[torch.Tensor]) -> None:
    """Recompute every loss module's target through ``model``'s own kernels (``style``: one image or several,
    blended as the style modules' ``blend`` says).

    The fast path builds the model without targets (``build_style_model(..., targets=False)``) and sets them
    here, so the images run once, through the fused kernels. Targets from the plain graph would not do: its
    convs round differently (~1e-5), which would leave the content image a content loss of ~1e-12 instead of 0.
    """
    seen: dict[Tap, torch.Tensor] = {}
    _retargeting.capture = seen.__setitem__
    styles = [style] if isinstance(style, torch.Tensor) else list(style)
    try:
        with torch.no_grad():
            feats: dict[Tap, list[torch.Tensor]] = {}
            for image, kind in ((content, ContentLoss), *((s, StyleLoss) for s in styles)):
                seen.clear()
                x = image
                for module in model:
                    if isinstance(module, (ContentLoss, StyleLoss)):  # a loss module outside the blocks: its input
                        seen[module] = x
                    else:
                        x = module(x)
                for tap, f in seen.items():
                    if isinstance(tap, kind):
                        feats.setdefault(tap, []).append(f)
            for tap, fs in feats.items():
                tap.set_target(fs[0] if isinstance(tap, ContentLoss) else fs)
    finally:
        _retargeting.capture = None


def fuse(model: nn.Sequential, content: torch.Tensor | None = None,
         style: torch.Tensor | Sequence[torch.Tensor] | None = None) -> nn.Sequential:
    """The seed's model with each ``conv_N [losses] [relu_N [losses]] [pool_N]`` run replaced by a :class:`ConvBlock`.

    ``Normalization``, average pools, and a max pool with loss modules after it stay as they are (autograd runs
    them). The blocks share one :class:`Workspace`, keep the conv's name, and hold the very loss modules of the
    plain model, whose ``.loss`` they set.
    Given the content and style images, the targets are recomputed through the fused kernels (:func:`retarget`).
    """
    items = list(model.named_children())
    fused, i, workspace = nn.Sequential(), 0, Workspace()
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
        pool = relu and i < len(items) and _is_vgg_max_pool(items[i][1]) and _taps(items, i + 1)[0] == i + 1
        fused.add_module(name, ConvBlock(module, relu, pre, post, pool, workspace))
        i += pool
    for block, successor in zip(fused, list(fused)[1:]):
        if isinstance(block, ConvBlock):
            block.feeds_block = isinstance(successor, ConvBlock)
    if content is not None and style is not None:
        retarget(fused, content, style)
    return fused


def _is_vgg_max_pool(m: nn.Module) -> bool:
    """A 2x2, stride-2 max pool (VGG's), which a block can take in; a pool with taps after it stays outside."""
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    return (isinstance(m, nn.MaxPool2d) and pair(m.kernel_size) == (2, 2) and pair(m.stride) == (2, 2)
            and pair(m.padding) == (0, 0) and pair(m.dilation) == (1, 1) and not m.ceil_mode and not m.return_indices)


def _taps(items: list[tuple[str, nn.Module]], i: int) -> tuple[int, list[Tap]]:
    """The loss modules from ``items[i]`` on, and the index after them."""
    taps = []
    while i < len(items) and isinstance(items[i][1], (ContentLoss, StyleLoss)):
        taps.append(items[i][1])
        i += 1
    return i, taps
