"""What the commands print: the tables of ``stylize bench``, ``stylize model`` and the compression scores."""

from __future__ import annotations

from rich.console import Console


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.0f}"


class BenchTable:
    """Prints each row as it is measured (a size can take a minute), then the machine and the notes."""

    def __init__(self, console: Console, quality: bool):
        self.console, self.quality = console, quality
        console.print("[bold]stylize bench[/]: ms per evaluation (forward + losses + backward), median "
                      r"\[min-max]; ours vs the seed's code, interleaved")

    def add(self, row) -> None:
        c = self.console
        if row.error:
            c.print(f"{row.device} {row.size}px: {row.error}")
            return
        o, s = row.ours, row.seed
        mib = lambda b: "n/a" if b is None else f"{b / 2**20:,.0f} MiB"
        c.print(f"[bold]{row.device} {row.width}x{row.height}[/] ({row.gflop:.1f} GFLOP/eval): "
                f"seed {ms(s.median_s)} \\[{ms(min(s.eval_s))}-{ms(max(s.eval_s))}]  "
                f"ours {ms(o.median_s)} \\[{ms(min(o.eval_s))}-{ms(max(o.eval_s))}]  "
                f"[bold green]speedup {row.speedup:.2f}x[/]")
        if row.sim_ms is not None:
            c.print(f"    simulated device time of our evaluation: {row.sim_ms:,.1f} ms (host time above)")
        c.print(f"    GFLOP/s seed {row.gflop / s.median_s:.0f}, ours {row.gflop / o.median_s:.0f}; "
                f"setup seed {ms(s.setup_s)} ms, ours {ms(o.setup_s)} ms; "
                f"peak memory (setup + 3 evaluations{'' if row.device.startswith('cuda') else ', process RSS'}): "
                f"seed {mib(s.peak_bytes)}, ours {mib(o.peak_bytes)}")
        if row.quality:
            q = row.quality
            reached = (f"ours reached it in {q['ours_s']:.1f} s ({q['ours_evals']} evaluations, coarse stage included): "
                       f"[bold green]{q['speedup']:.2f}x[/]") if q["ours_s"] else "ours did not reach it"
            c.print(f"    time to quality: the seed's best loss in {q['evals']} evaluations is {q['target_loss']:.4g} "
                    f"(at evaluation {q['seed_best_at_eval']}; final {q['seed_final_loss']:.4g}); "
                    f"seed {q['seed_s']:.1f} s incl. setup; {reached}")

    def finish(self, result) -> None:
        for device, m in result.machine.items():
            self.console.print(f"machine: {m['description']}, {m['threads']} threads; conv peak "
                               f"{m['conv_peak_gflops']:.0f} GFLOP/s (3x3 conv, 64 ch, 128 px, channels_last)")
        self.console.print(f"config: {result.config}; weights: {result.weights}")


HIGH_RES_HEADER = ("size  WxH  MP  mode  tiles(tile+halo)  history  predicted GiB  peak RSS GiB  setup s  s/eval  "
                   "s/eval/MP")


def high_res_row(r: dict) -> str:
    """One row of `stylize bench --high-res` (bench.bench_high_res), under :data:`HIGH_RES_HEADER`."""
    if r.get("error"):
        return f"{r['size']}  {r['width']}x{r['height']}  {r['mode']}: {r['error']}"
    gib = lambda b: f"{b / 2**30:.2f}"  # noqa: E731
    tiles = f"{r['tiles']} ({r['tile']}+{r['halo']})" if r["tile"] else "1"
    return (f"{r['size']}  {r['width']}x{r['height']}  {r['megapixels']:.2f}  {r['mode']}  {tiles}  {r['history']}  "
            f"{gib(r['predicted_peak_bytes'])}  {gib(r['peak_rss_bytes'])}  {r['setup_s']:.1f}  {r['median_s']:.2f}  "
            f"{r['s_per_mp']:.2f}")


def si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:g}"


def model_table(s):
    """The rows of ``stylize model`` as a rich table."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in (("layer", "left"), ("paper", "left"), ("output (N, C, H, W)", "left"), ("params", "right"),
                          ("FLOPs fwd", "right"), ("loss", "left"), ("notes", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "notes")
    for r in s.rows:
        is_loss = r.kind.endswith("_loss")
        loss = f"{r.kind.split('_')[0]} x{r.weight:g} on {r.observes}" if is_loss else ""
        table.add_row(r.name, r.paper_name, str(tuple(r.shape)), f"{r.params:,}" if r.params else "",
                      si(r.flops) if r.flops else "", loss, r.note, style="magenta" if is_loss else None)
    return table


def print_score(console: Console, result) -> None:
    r = result.report
    if r is None:
        return
    p, fb, et = r["probe"], r["file_bytes"], r["eval_time"]
    console.print(f"score (probe: demo pair {p['image'][0]}x{p['image'][1]} px, {p['steps']} steps, seed {p['seed']}, "
                  f"recipe {p['recipe']}; both results scored with the original network's losses):")
    console.print(f"  loss of the original's result {r['loss_of_original_result']['total']:.5g}, of the compressed "
                  f"result {r['loss_of_compressed_result']['total']:.5g}: [bold]quality retained {r['quality_retained']:.1%}[/]")
    console.print(f"  file {fb['compressed'] / 2**20:.2f} MiB vs fp32 {fb['original_fp32'] / 2**20:.2f} MiB "
                  f"(ratio {fb['ratio']:.3f})")
    console.print(f"  per evaluation (forward + losses + backward, fp32): original {ms(et['original_median_s'])} ms, "
                  f"compressed {ms(et['compressed_median_s'])} ms: [bold]{et['speedup']:.2f}x[/]")
    if "int8_inference" in r:
        q = r["int8_inference"]
        console.print(f"  int8 feature extraction ({q['kernel']}, {q['cpu']['onednn_isa']}, {q['threads']} threads): fp32 {q['fp32_median_s'] * 1e3:.1f} ms, "
                      f"int8 {q['int8_median_s'] * 1e3:.1f} ms: [bold]{q['speedup']:.2f}x[/]; relative error vs fp32 "
                      f"{q['relative_error']:.2%}")
    console.print(f"wrote {result.report_path}")
