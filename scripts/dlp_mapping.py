"""Every VGG19 conv layer on both bundled specs: DRAM traffic and simulated time before and after the mapping search.

    PYTHONPATH=. python scripts/dlp_mapping.py [--size 256] [--mode fp32] [--markdown]

"Before" is the conv kernel's own plan (largest tiles that fit; weight-stationary when Cin fits one block)
with no shared SRAM; "after" is ``stylize.dlp.mapping.search`` (loop order, tile shape, channel blocks;
weights staged in the cluster's SRAM where the spec has one). Both are priced by ``mapping.traffic``.
"""

from __future__ import annotations

import argparse

from stylize.dlp import mapping, spec as specs
from stylize.features import LAYERS


def vgg19_convs(size: int) -> list[mapping.ConvLayer]:
    """The 16 convs of VGG19 on a ``size`` x ``size`` image (each 2x2 pool halves the side)."""
    out, cin = [], 3
    for layer in LAYERS:
        if layer.kind == "conv":
            side = size >> layer.pools_before
            out.append(mapping.ConvLayer(cin, layer.channels, side, side, name=layer.paper_name))
            cin = layer.channels
    return out


def fmt(m: mapping.Mapping) -> str:
    return f"{m.order} {m.th}x{m.tw} c{m.cb} k{m.kb}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--mode", default="fp32")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    for name in ("textbook", "mlu270"):
        spec = specs.load(name)
        head = ["layer", "C→K", "HxW", "before: mapping", "DRAM MB", "ms", "after: mapping", "DRAM MB", "ms", "traffic ÷"]
        rows, totals = [], [0, 0.0, 0, 0.0]
        for layer in vgg19_convs(args.size):
            before = mapping.current(layer, spec, args.mode)
            tb = mapping.traffic(layer, before, spec, args.mode, use_sram=False)
            after, ta = mapping.search(layer, spec, args.mode)
            totals = [totals[0] + tb.dram, totals[1] + tb.time_s, totals[2] + ta.dram, totals[3] + ta.time_s]
            rows.append([layer.name, f"{layer.c}→{layer.k}", f"{layer.h}x{layer.w}", fmt(before), f"{tb.dram / 1e6:.1f}",
                         f"{tb.time_s * 1e3:.3f}", fmt(after), f"{ta.dram / 1e6:.1f}", f"{ta.time_s * 1e3:.3f}",
                         f"{tb.dram / ta.dram:.1f}"])
        rows.append(["all", "", "", "", f"{totals[0] / 1e6:.1f}", f"{totals[1] * 1e3:.3f}", "", f"{totals[2] / 1e6:.1f}",
                     f"{totals[3] * 1e3:.3f}", f"{totals[0] / totals[2]:.1f}"])
        print(f"\n{name} spec (usable NRAM {spec.nram_bytes // 1024} KB, WRAM {spec.wram_bytes // 1024} KB, SRAM "
              f"{spec.sram_bytes // 1024} KB per {spec.cluster_cores} cores), {args.mode}, {args.size} x {args.size} input\n")
        if args.markdown:
            print("| " + " | ".join(head) + " |")
            print("|" + "---|" * len(head))
            for r in rows:
                print("| " + " | ".join(r) + " |")
        else:
            widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
            for r in [head, *rows]:
                print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))


if __name__ == "__main__":
    main()
