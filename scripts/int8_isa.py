"""Why oneDNN's int8 conv is wrong without VNNI, measured: compare its output with exact integer arithmetic and
with a model of the AVX2 kernel's ``vpmaddubsw`` (u8 x s8 products summed in pairs into int16, saturating).

Run it twice, once as the CPU is and once with oneDNN capped at AVX2 (no VNNI), e.g. on an AVX-512 machine:

    python scripts/int8_isa.py
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python scripts/int8_isa.py

For each conv of a calibrated untrained VGG19 (up to conv_4, the tests' net) it prints the max |oneDNN - model|
for the exact model and for the saturating-pairs model (in units of the output's quantum ``x_scale * w_scale``),
how many pair sums leave int16, and the end-to-end relative error vs fp32 with 8-bit and 7-bit activations.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from stylize import cpu, features
from stylize.compress import quantize


def integer_models(qx: torch.Tensor, zp: int, wq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(exact, saturating-pairs) int accumulations as float64 (1, O, H, W), and the count of saturated pairs."""
    _, c, h, w = qx.shape
    x = F.pad(qx.double(), (1, 1, 1, 1), value=zp)  # the border is float 0, i.e. the zero point's code
    if c % 2:  # oneDNN pads the channels with zeros to its block
        x, wq = F.pad(x, (0, 0, 0, 0, 0, 1)), F.pad(wq, (0, 0, 0, 0, 0, 1))
        c += 1
    cols = F.unfold(x, 3)  # (1, C*9, L), channel-major
    wcols = wq.double().reshape(wq.shape[0], c * 9)
    exact = (wcols @ cols[0]).reshape(1, -1, h, w)
    # vpmaddubsw pairs neighbouring input channels at one tap: (c0, c1), (c2, c3), ... each sum clamped to int16
    x = cols[0].reshape(c // 2, 2, 9, -1)  # (C/2, 2, 9, L)
    wp = wcols.reshape(-1, c // 2, 2, 9)  # (O, C/2, 2, 9)
    pairs = torch.einsum("pjtl,opjt->optl", x, wp)  # (O, C/2, 9, L)
    saturated = int(((pairs > 32767) | (pairs < -32768)).sum())
    sat = pairs.clamp(-32768, 32767).sum((1, 2)).reshape(1, -1, h, w)
    return exact, sat, saturated


def conv_check(q: dict, index: int, x: torch.Tensor, bits: int = 8) -> dict:
    conv = quantize.Int8Conv(q[index], bits=bits)
    qx = quantize.quantize_activation(x, conv.x_scale, conv.x_zp, conv.qmax)
    wq = q[index]["weight_int8"]
    exact, sat, saturated = integer_models(qx, conv.x_zp, wq)
    zp_term = conv.x_zp * wq.double().sum((1, 2, 3)).view(1, -1, 1, 1)  # oneDNN's zero-point compensation
    scale = (conv.x_scale * conv.w_scale.double()).view(1, -1, 1, 1)
    bias = conv.bias.double().view(1, -1, 1, 1)
    with torch.no_grad():
        got = conv(x).double()
    quantum = float(scale.max())
    return {"conv": features.LAYERS[index].name, "in_ch": wq.shape[1],
            "vs_exact": float((got - ((exact - zp_term) * scale + bias)).abs().max()) / quantum,
            "vs_saturating": float((got - ((sat - zp_term) * scale + bias)).abs().max()) / quantum,
            "pairs_out_of_int16": saturated, "x_zp": conv.x_zp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"{cpu.report()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    net = features.init_untrained(features.vgg19_features(features.layer("conv_4").index)).eval()
    q = quantize.calibrate(net, quantize.calibration_images(None, size=48))
    image = features.Normalization()(quantize.calibration_images(None, args.size)[0])
    # Each conv's real input: the fp32 net's activation before it.
    with torch.no_grad():
        acts, y = {}, image
        for i, m in enumerate(net):
            acts[i] = y
            y = m(y)
    print(f"{'conv':8} {'in_ch':>5} {'x_zp':>4} {'|onednn-exact|':>14} {'|onednn-saturating|':>19} {'pairs>int16':>11} {'7-bit |onednn-exact|':>20}"
          "  (max, in output quanta)")
    for index in q:
        r, r7 = conv_check(q, index, acts[index]), conv_check(q, index, acts[index], bits=7)
        print(f"{r['conv']:8} {r['in_ch']:5d} {r['x_zp']:4d} {r['vs_exact']:14.3f} {r['vs_saturating']:19.3f} "
              f"{r['pairs_out_of_int16']:11d} {r7['vs_exact']:20.3f}")
    with torch.no_grad():
        ref = net(image)
        for bits in (8, 7):
            int8 = quantize.int8_features(q, max(q), activation_bits=bits)
            err = quantize.relative_error(int8(image), ref)
            times = {"fp32": [], "int8": []}
            for fn in (net, int8):
                fn(image)
            for _ in range(args.repeat):
                for name, fn in (("fp32", net), ("int8", int8)):
                    t = time.perf_counter()
                    fn(image)
                    times[name].append(time.perf_counter() - t)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{bits}-bit activations: relative error vs fp32 {err:.4f}; feature extraction at {args.size} px "
                  f"fp32 {med['fp32'] * 1e3:.2f} ms, int8 {med['int8'] * 1e3:.2f} ms, speedup {med['fp32'] / med['int8']:.2f}x")


if __name__ == "__main__":
    main()
