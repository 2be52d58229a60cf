"""``import torch_dlp``: the lecture's name for the DLP's PyTorch extension.

Importing it registers the device ``dlp`` (``torch.device('dlp')``, ``x.dlp()``, ``x.to('dlp')``) and the module
``torch.dlp`` (``manual_seed``, ``synchronize``, ``memory_allocated``, ...). The implementation is
:mod:`stylize.dlp`, the simulated deep-learning processor; this package only gives it the lecture's name.
"""

from stylize.dlp import (  # noqa: F401
    DEVICE,
    DLPTensor,
    OutOfMemoryError,
    Profile,
    configure,
    current,
    session,
)
