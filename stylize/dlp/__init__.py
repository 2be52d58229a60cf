"""dlp-sim: a simulated deep-learning processor, registered in PyTorch as the device ``dlp``.

``import stylize.dlp`` registers it; then::

    x = torch.randn(2, 3).to("dlp")     # or x.dlp(), x.to(torch.device("dlp"))
    x.is_dlp, x.device                  # True, device(type='dlp', index=0)
    net = net.to("dlp"); y = net(x)     # every op runs through a device kernel (or a counted host fallback)
    profile = stylize.dlp.configure("mlu270", "int8")   # spec + numerics; returns the fresh profile
    print(profile.table())

Layout: :mod:`.device` (the tensor and the op -> kernel table), :mod:`.kernels` (conv, matmul/gram, vector),
:mod:`.ops` (fused custom ops with autograd), :mod:`.fuse` (conv+ReLU), :mod:`.numerics` (fp32/fp16/int8),
:mod:`.spec` (``configs/dlp/*.yaml``), :mod:`.cost` (the tiled roofline), :mod:`.profile`.
"""

from __future__ import annotations

import torch

from .spec import MODES, DeviceSpec, load as load_spec  # noqa: F401  (light: no torch registration needed)


def _register() -> None:
    if torch._C._get_privateuse1_backend_name() == "dlp":
        return
    from torch.utils.backend_registration import _setup_privateuseone_for_python_backend

    from . import torch_module

    _setup_privateuseone_for_python_backend("dlp", backend_module=torch_module)  # torch.dlp is stylize.dlp.torch_module


_register()

from . import ops  # noqa: E402,F401  (registers the custom ops and their kernels)
from .device import DEVICE, DLPTensor, KERNELS  # noqa: E402,F401
from .fuse import fuse_conv_relu  # noqa: E402,F401
from .profile import Profile  # noqa: E402,F401
from .memory import OutOfMemoryError  # noqa: E402,F401
from .runtime import configure, current, session  # noqa: E402,F401
