"""The ``dlp`` device in PyTorch: PrivateUse1 renamed, a wrapper tensor, and the op -> kernel table.

How a framework meets an accelerator, in one file:

- :func:`register` renames PyTorch's spare backend slot (PrivateUse1) to ``dlp``. From then on
  ``torch.device("dlp")``, ``x.to("dlp")``, ``x.dlp()``, ``x.is_dlp`` and ``module.to("dlp")`` exist.
- A tensor on the device is a :class:`DLPTensor`: a wrapper whose metadata says ``device='dlp:0'`` and whose
  storage (``_data``) stands in for the device's DRAM (a host tensor).
- Creating a tensor on ``dlp`` (``empty``) is a kernel registered for the PrivateUse1 dispatch key; every
  other op on a DLPTensor arrives, below autograd, at :meth:`DLPTensor.__torch_dispatch__`, which looks the
  op up in :data:`KERNELS` (the backend's kernel table) and runs the device kernel. Autograd, optimizers and
  modules above it are PyTorch's own, unchanged.
- Views and metadata ops run as they are (no data moves). An op with no kernel runs on the host as a
  *fallback*, counted in the profile, as vendor backends do.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils._pytree import tree_map

from . import memory, runtime, torch_module
from .cost import TileGroup
from .kernels import conv, matmul, vector

aten = torch.ops.aten
DEVICE = torch.device("dlp", 0)
_HOST = torch.device("cpu")


class DLPTensor(torch.Tensor):
    """A tensor in the simulated device's memory (``_data`` holds its values)."""

    _data: torch.Tensor

    @staticmethod
    def __new__(cls, data: torch.Tensor, requires_grad: bool = False):
        t = torch.Tensor._make_wrapper_subclass(cls, data.shape, strides=data.stride(), storage_offset=data.storage_offset(),
                                                dtype=data.dtype, device=DEVICE, requires_grad=requires_grad)
        t._data = data
        memory.track(t, data)
        return t

    def __reduce_ex__(self, proto):
        # As PyTorch pickles a storage-less device tensor (XLA, MTIA): its values on the host, rebuilt on the device
        # by a function torch.load's weights_only unpickler allows and that honours map_location.
        return (torch._utils._rebuild_device_tensor_from_cpu_tensor,
                (self.cpu().detach(), self.dtype, str(self.device), self.requires_grad))

    def tolist(self):
        return self.cpu().tolist()  # a counted device -> host copy, as CUDA does

    def numpy(self, *, force: bool = False):
        raise TypeError("can't convert dlp:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host "
                        "memory first.")

    def __repr__(self, *, tensor_contents=None) -> str:
        return f"{self._data!r}".replace("tensor(", "dlp_tensor(", 1)[:-1] + ", device='dlp:0')"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return dispatch(func, args, kwargs or {})


def _unwrap(x):
    if isinstance(x, DLPTensor):
        return x._data
    if isinstance(x, torch.device) and x.type == "dlp":
        return _HOST
    return x


def dispatch(func, args, kwargs):
    wrappers = {id(a._data): a for a in _tensors((args, kwargs)) if isinstance(a, DLPTensor)}
    kind, kernel = _lookup(func)
    if kind == "transfer":
        return kernel(func, args, kwargs)
    uargs, ukwargs = tree_map(_unwrap, args), tree_map(_unwrap, kwargs)
    if kind == "kernel":
        _check_same_device(func, args, kwargs)
        out = kernel(*uargs, **ukwargs)
    else:
        started = time.perf_counter()
        out = func(*uargs, **ukwargs)
        if kind == "fallback":
            runtime.current().profile.fallback(str(func), time.perf_counter() - started)
    # In-place ops return their (unwrapped) argument: hand back the same wrapper, as a backend would.
    return tree_map(lambda o: _wrap(o, wrappers), out)


def _wrap(o, wrappers):
    if not isinstance(o, torch.Tensor):
        return o
    same = wrappers.get(id(o))
    return same if same is not None else DLPTensor(o)


def _tensors(tree):
    out = []
    tree_map(lambda x: out.append(x) if isinstance(x, torch.Tensor) else None, tree)
    return out


def _check_same_device(func, args, kwargs) -> None:
    for t in _tensors((args, kwargs)):
        if not isinstance(t, DLPTensor) and t.dim() > 0:
            raise RuntimeError(f"{func}: expected all tensors to be on dlp, found one on {t.device}. Move it with .to('dlp').")


# ---- host <-> device transfers and on-device copies ------------------------------------------------------


def _to_copy(func, args, kwargs):
    x = args[0]
    target = kwargs.get("device")
    torch_module.check_index(target)
    k = {key: v for key, v in kwargs.items() if key != "device"}
    data = x._data if isinstance(x, DLPTensor) else x
    out = aten._to_copy.default(data, **k, device=_HOST)
    if target is not None and target.type == "cpu":
        runtime.current().profile.transfer("d2h", out.nbytes)
        return out
    if isinstance(x, DLPTensor):  # a dtype change on the device: DRAM -> DRAM through the chip
        runtime.record("copy", [TileGroup(1, data.nbytes, out.nbytes)], time.perf_counter())
    else:
        runtime.current().profile.transfer("h2d", out.nbytes)
    return DLPTensor(out)


def _copy_(func, args, kwargs):
    dst, src = args[0], args[1]
    if isinstance(dst, DLPTensor):
        if isinstance(src, DLPTensor):
            runtime.record("copy", [TileGroup(1, src._data.nbytes, dst._data.nbytes)], time.perf_counter())
        else:
            runtime.current().profile.transfer("h2d", src.nbytes)
        dst._data.copy_(_unwrap(src), **{k: v for k, v in kwargs.items() if k == "non_blocking"})
        return dst
    runtime.current().profile.transfer("d2h", src._data.nbytes)  # dst is a host tensor
    return dst.copy_(src._data)


def _item(func, args, kwargs):
    runtime.current().profile.transfer("d2h", args[0]._data.element_size())
    return args[0]._data.item()


def _reserve(size, dtype, device) -> torch.dtype:
    """Check the device index and the DRAM left before any host memory is taken; returns the dtype."""
    torch_module.check_index(device)
    dtype = dtype or torch.get_default_dtype()
    numel = 1
    for d in size:
        numel *= int(d)
    memory.reserve(numel * torch.empty((), dtype=dtype).element_size())
    return dtype


@torch.library.impl("aten::empty.memory_format", "PrivateUse1")
def _empty(size, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    dtype = _reserve(size, dtype, device)
    return DLPTensor(torch.empty(size, dtype=dtype, memory_format=memory_format or torch.contiguous_format))


@torch.library.impl("aten::empty_strided", "PrivateUse1")
def _empty_strided(size, stride, dtype=None, layout=None, device=None, pin_memory=None):
    dtype = _reserve(size, dtype, device)
    return DLPTensor(torch.empty_strided(size, stride, dtype=dtype))


@torch.library.impl("aten::_copy_from", "PrivateUse1")
def _copy_from(src, dst, non_blocking=False):
    # torch.tensor(data, device='dlp') / as_tensor: PyTorch allocates on the device and copies below the Python
    # dispatch key, so the copy arrives here rather than at __torch_dispatch__.
    if isinstance(dst, DLPTensor):
        runtime.current().profile.transfer("h2d" if not isinstance(src, DLPTensor) else "d2d", src.nbytes)
        dst._data.copy_(_unwrap(src))
        return dst
    runtime.current().profile.transfer("d2h", src.nbytes)
    return dst.copy_(_unwrap(src))


def _keep_on_host(storage, location: str):
    # torch.load(..., map_location='dlp'): a dlp tensor's values were saved on the host and are moved to the
    # device by its rebuild function (``__reduce_ex__`` above); the storage itself stays a host storage, since the
    # simulated device has no storage allocator of its own.
    return storage if str(location).startswith("dlp") else None


torch.serialization.register_package(5, lambda obj: None, _keep_on_host)


def _random(func):
    """Random fills draw from the device's generator (torch.dlp.manual_seed), on the vector unit."""
    def run(*args, **kwargs):
        if kwargs.get("generator") is None:
            kwargs = {**kwargs, "generator": torch_module.generator()}
        return vector.elementwise(func, args, kwargs, "random")
    return run


# ---- the kernel table ------------------------------------------------------------------------------------

FREE = {  # views, metadata and allocation: no data moves, no kernel
        aten.view, aten._unsafe_view, aten.alias, aten.detach, aten.t, aten.transpose, aten.permute, aten.expand,
        aten.slice, aten.select, aten.unsqueeze, aten.squeeze, aten.as_strided, aten.split, aten.split_with_sizes,
        aten.unbind, aten.narrow, aten.lift_fresh, aten.empty_like, aten.new_empty, aten.new_empty_strided,
        aten.empty, aten.empty_strided, aten.unfold}
TRANSFERS: dict = {aten._to_copy: _to_copy, aten.copy_: _copy_, aten._local_scalar_dense: _item}

ELEMENTWISE = (  # aten ops the vector unit runs as they are (the in-place forms included)
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "neg_", "reciprocal", "pow", "pow_", "square",
    "clamp", "clamp_", "clamp_min", "clamp_max", "relu", "relu_", "threshold_backward", "abs", "sqrt", "rsqrt",
    "exp", "log", "sign", "sigmoid", "tanh", "maximum", "minimum", "where", "masked_fill_", "lerp_", "addcmul_",
    "addcdiv_", "gt", "lt", "ge", "le", "eq", "ne", "isnan", "isinf", "logical_not", "logical_and", "logical_and_",
    "logical_or", "logical_or_", "bitwise_and", "bitwise_and_", "bitwise_or", "bitwise_or_", "fill_", "zero_", "ones_like", "zeros_like",
    "full_like", "new_zeros", "new_ones", "new_full", "clone", "cat", "stack", "max", "min", "amax", "any", "all",
    "mse_loss_backward",
)


def _named(name: str) -> Callable:
    def run(func):
        return lambda *a, **k: vector.elementwise(func, a, k, name)
    return run


def _conv(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    if tuple(stride) != (1, 1) or tuple(dilation) != (1, 1) or transposed or groups != 1 or x.dim() != 4:
        return _host(aten.convolution.default, x, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    return conv.conv2d(x, weight, bias, tuple(padding))


def _conv_backward(grad, x, weight, bias_sizes, stride, padding, dilation, transposed, output_padding, groups, mask):
    simple = tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and not transposed and groups == 1 and x.dim() == 4 \
        and all(p <= k - 1 for p, k in zip(padding, weight.shape[2:]))
    if not simple or mask[1] or mask[2]:
        # The weight and bias gradients are not needed by style transfer (the network is frozen): host fallback.
        return _host(aten.convolution_backward.default, grad, x, weight, bias_sizes, stride, padding, dilation,
                     transposed, output_padding, groups, mask)
    return conv.conv2d_input_grad(grad, weight, tuple(padding)), None, None


def _host(func, *args):
    started = time.perf_counter()
    out = func(*args)
    runtime.current().profile.fallback(str(func), time.perf_counter() - started)
    return out


def _sum(x, dim=None, keepdim=False, dtype=None):
    if dim not in (None, [], ()) or dtype is not None:
        return vector.elementwise(aten.sum.dim_IntList, (x, dim, keepdim), {"dtype": dtype} if dtype else {}, "sum")
    return vector.tiled_sum(x)


def _mean(x, dim=None, keepdim=False, dtype=None):
    if dim not in (None, [], ()) or dtype is not None:
        return vector.elementwise(aten.mean.dim, (x, dim, keepdim), {"dtype": dtype} if dtype else {}, "mean")
    return vector.tiled_sum(x, name="mean") / x.numel()


KERNELS: dict = {
    aten.convolution.default: _conv,
    aten.convolution_backward.default: _conv_backward,
    aten.mm.default: lambda a, b: matmul.matmul(a, b),
    aten.sum.default: _sum, aten.sum.dim_IntList: _sum,
    aten.mean.default: _mean, aten.mean.dim: _mean,
    aten.dot.default: vector.tiled_dot,
    aten.mse_loss.default: vector.mse_loss,
    aten.max_pool2d_with_indices.default: lambda *a: vector.pool(aten.max_pool2d_with_indices.default, a, {}, "max_pool2d"),
    aten.max_pool2d_with_indices_backward.default:
        lambda *a: vector.pool(aten.max_pool2d_with_indices_backward.default, a, {}, "max_pool2d.backward"),
    aten.avg_pool2d.default: lambda *a: vector.pool(aten.avg_pool2d.default, a, {}, "avg_pool2d"),
    aten.avg_pool2d_backward.default: lambda *a: vector.pool(aten.avg_pool2d_backward.default, a, {}, "avg_pool2d.backward"),
}
_BY_PACKET = {getattr(aten, name): name for name in ELEMENTWISE if hasattr(aten, name)}
_RANDOM = {aten.normal_, aten.uniform_, aten.bernoulli_, aten.bernoulli, aten.random_, aten.exponential_}


def _lookup(func):
    if func in KERNELS:
        return "kernel", KERNELS[func]
    packet = func.overloadpacket
    if packet in TRANSFERS:
        return "transfer", TRANSFERS[packet]
    if packet in FREE:
        return "free", None
    if packet in _BY_PACKET:
        return "kernel", _named(_BY_PACKET[packet])(func)
    if packet in _RANDOM:
        return "kernel", _random(func)
    return "fallback", None


def register_kernel(op, kernel: Callable) -> None:
    """Add a device kernel for an op (an ``OpOverload``), e.g. a ``torch.library`` custom op."""
    KERNELS[op] = kernel
