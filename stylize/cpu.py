"""What this CPU's kernels do: ATen's vector ISA, the ISA oneDNN dispatches to, and whether oneDNN's int8
conv saturates (x86 without VNNI).

Measured (scripts/int8_isa.py): without VNNI, oneDNN's int8 conv multiplies uint8 activations by int8 weights
with ``vpmaddubsw``, which adds neighbouring products into int16 and saturates; its outputs equal that model
to 0.02 output quanta, and differ from exact int32 arithmetic by thousands. With VNNI (``vpdpbusd``) products
go straight into int32 and the kernel is exact. torch's own ``torch.cpu._is_vnni_supported()`` reads cpuid and
ignores ``ONEDNN_MAX_CPU_ISA``, so both facts are asked of oneDNN itself.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile

import torch


def int8_kernel_available() -> bool:
    """Whether this torch has oneDNN's quantized conv (x86/aarch64 CPU builds with mkldnn)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv2d_pointwise")


@functools.cache
def onednn_isa() -> str:
    """The instruction set oneDNN dispatches to here, as its verbose log names it (``Intel AVX2``, ``Intel
    AVX-512 with Intel DL Boost ...``); it honours ``ONEDNN_MAX_CPU_ISA``, which torch's cpuinfo checks do not.
    ``none`` without the int8 kernel, ``unknown`` when the log could not be read."""
    if not int8_kernel_available():
        return "none"
    # oneDNN prints its info lines from C++ to fd 1 the first time verbose mode is on: catch them there.
    with tempfile.TemporaryFile("w+b") as log:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(log.fileno(), 1)
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                torch.ops.onednn.qconv_prepack(torch.ones(4, 4, 3, 3, dtype=torch.int8), torch.ones(4), 1.0, 0,
                                               [1, 1], [1, 1], [1, 1], 1, None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        text = log.read().decode(errors="replace")
    found = re.search(r"onednn_verbose,(?:v1,)?info,cpu,isa:([^\n]+)", text)
    return found.group(1).strip() if found else "unknown"


@functools.cache
def int8_pairs_saturate() -> bool:
    """Whether oneDNN's int8 conv here sums u8 x s8 products in pairs into int16 and saturates (x86 without
    VNNI: ``vpmaddubsw``), found by running it: 32 channels of 255 against weights of 127 make pair sums of
    64770, which int16 clips to 32767; an exact (VNNI, int32) kernel gives 255 * 127 * 32 * 9 at the centre
    (below 2**24, so exact in its fp32 output)."""
    if not int8_kernel_available():
        return False
    w = torch.full((8, 32, 3, 3), 127, dtype=torch.int8)
    packed = torch.ops.onednn.qconv_prepack(w, torch.ones(8), 1.0, 0, [1, 1], [1, 1], [1, 1], 1, None)
    x = torch.full((1, 32, 8, 8), 255, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    y = torch.ops.onednn.qconv2d_pointwise(x, 1.0, 0, packed, torch.ones(8), torch.zeros(8, dtype=torch.int64),
                                           None, [1, 1], [1, 1], [1, 1], 1, 1.0, 0, torch.float32, "none", [], "")
    return float(y[0, 0, 4, 4]) != 255 * 127 * 32 * 9


def report() -> dict[str, str | bool]:
    """The CPU facts a result depends on, for run.json and the compress reports."""
    return {"aten_capability": torch.backends.cpu.get_cpu_capability(), "onednn_isa": onednn_isa(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "unset"),
            "int8_pairs_saturate": int8_pairs_saturate()}
