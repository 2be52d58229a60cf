"""The ``stylize`` command line: thin Typer commands over the library.

Each command parses, builds the config, calls one library function and maps errors to exit codes:
a :class:`StylizeError` or a usage error is one line on stderr and exit 2; Ctrl-C is exit 130.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperGroup

from .. import bench as bench_lib, checkpoint, images, logs, weights
from . import tables
from .options import ConfigOptions, config_flags, config_options, help_text
from ..callbacks import Callbacks
from ..compress.config import PruneConfig, QuantizeConfig
from ..config import build_config, to_yaml
from ..errors import StylizeError
from ..outputs import AtomicFiles
from ..optimize import StepRecord
from ..transfer import run as run_transfer
from .. import video as video_lib
from ..version import __version__

log = logging.getLogger("stylize")


def _stderr() -> Console:
    # Made per call, not at import: CliRunner swaps sys.stderr for each invocation.
    return Console(stderr=True, highlight=False)


def _fail(message: str, code: int = 2) -> None:
    _stderr().print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True)
    sys.exit(code)


class _Group(TyperGroup):
    """Maps user errors to one line + exit 2, whether called as a script or through CliRunner."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as e:  # usage errors: bad option, bad value type (typer vendors click)
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `stylize`: the help was printed; nothing is wrong
                return _exit(0, standalone_mode)
            ctx = getattr(e, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx else ""
            _fail(e.format_message().replace("[", r"\[") + where)
        except typer.Abort:
            _fail("aborted.", 130)
        except StylizeError as e:
            _fail(str(e).replace("[", r"\["))
        return _exit(rv if isinstance(rv, int) else 0, standalone_mode)


def _exit(code: int, standalone_mode: bool) -> int:
    if standalone_mode:
        sys.exit(code)
    return code


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Neural style transfer (Gatys et al.) faithful to the classic PyTorch recipe.\n\n"
    "Example: [bold]stylize run photo.jpg painting.jpg -o out.png --size 256[/]",
    rich_markup_mode="rich",
)
weights_app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    help="ImageNet VGG19 weights: what is available, and importing them on air-gapped machines.\n\n"
    "Example: [bold]stylize weights import ~/Downloads/vgg19-dcbb9e9d.pth[/]",
)
app.add_typer(weights_app, name="weights")


_BENCH = bench_lib.BenchConfig()
_PRUNE, _QUANTIZE = PruneConfig(output=""), QuantizeConfig(output="")


def _version(value: bool) -> None:
    if value:
        print(f"stylize {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Neural style transfer from the command line."""


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class _ConsoleLog(logging.Handler):
    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().replace("[", r"\[")
        if record.levelno >= logging.WARNING:
            message = f"[bold yellow]warning:[/] [yellow]{message}[/]"
        self.console.print(message, soft_wrap=True)


class _Progress(Callbacks):
    """Per-step feedback: a loss line every ``log_every`` steps (the seed prints every 50) and, on a terminal,
    a rich progress bar with ETA and live losses. The bar appears with the first step, so setup errors and
    warnings are not mixed with an empty bar."""

    def __init__(self, console: Console, log_every: int):
        self.console, self.steps, self.log_every, self.stages = console, None, log_every, []
        self.bar = Progress(TextColumn("[bold]stylize"), BarColumn(bar_width=24), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                            TextColumn("{task.fields[losses]}"), console=console)
        self.task = None

    def plan(self, stages) -> None:
        """Called by the run with its schedule: the bar counts the evaluations of all sizes."""
        self.steps, self.stages = sum(s.steps for s in stages), list(stages)

    def step(self, r: StepRecord) -> None:
        losses = f"total {r.total:.4g}  style {r.style:.4g}  content {r.content:.4g}"
        at = [k for k, s in enumerate(self.stages) if s.size == r.size]
        if len(self.stages) > 1 or any(s.tiles > 1 for s in self.stages):  # which stage, and its tiles (plan.py)
            stage = self.stages[at[-1]] if at else None
            where = f"stage {at[-1] + 1}/{len(self.stages)} {stage.width}x{stage.height}" if at else ""
            losses = f"{where}{f', {stage.tiles} tiles' if stage and stage.tiles > 1 else ''}  {losses}"
        if self.console.is_terminal:
            if self.task is None:
                self.bar.start()
                self.task = self.bar.add_task("run", total=self.steps, losses="")
            self.bar.update(self.task, completed=r.step, losses=losses)
        if r.step % self.log_every == 0:
            self.console.print(f"step {r.step}: {losses}")

    def stopped_early(self, step: int, reason: str) -> None:
        """The run stopped before its last step (the plateau rule): the bar ends full at ``step``, with why."""
        if self.task is not None:
            self.bar.update(self.task, total=step, completed=step, losses=f"stopped: {reason}")

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


@app.command(epilog="Examples:\n\n"
             "  stylize run                                  # the bundled demo pair\n\n"
             "  stylize run photo.jpg painting.jpg -o out.png --size 256 --steps 200\n\n"
             "  stylize run photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 --original-colors\n\n"
             "  stylize run photo.jpg painting.jpg --scales 256,512 --tv-weight 10 --save-every 50\n\n"
             "  stylize run photo.jpg painting.jpg --checkpoint-every 100   # then: stylize run --resume outputs/photo__painting.ckpt\n\n"
             "  stylize run photo.jpg painting.jpg -c configs/gatys.yaml --set style_weight=1e5\n\n"
             "  stylize run photo.jpg --region sky.png=a.jpg --region ground.png=b.jpg:2   # regional styles\n\n"
             "  stylize run --device dlp-sim --dlp-spec mlu270 --dlp-mode int8 --profile   # the simulated DLP\n\n"
             "  stylize run --print-config -c gatys          # show the resolved config")
@config_options
def run(
    content: Annotated[Optional[Path], typer.Argument(help="Content image (default: the bundled demo).", show_default=False)] = None,
    style: Annotated[Optional[list[Path]], typer.Argument(help="Style image(s); several are blended (default: the bundled demo).", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help=help_text("Output image, .png or .jpg; logs are written beside it.", "output"), show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run a checkpoint (<stem>.ckpt) saved; its settings are the defaults.", show_default=False)] = None,
    tensorboard: Annotated[Optional[Path], typer.Option(help="Write TensorBoard logs (losses, images, graph) to this folder.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or info; warnings and errors only.")] = False,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the resolved config as YAML and exit.")] = False,
    *,
    options: ConfigOptions,
) -> None:
    """Stylize CONTENT with STYLE: writes the image, <stem>.losses.csv, <stem>.run.json and <stem>.loss.png."""
    saved = checkpoint.load(resume)["config"] if resume else None
    cfg = options.build(base=saved, content=content, style=style, output=output, tensorboard=tensorboard)
    if print_config:
        print(to_yaml(cfg), end="")
        return
    console = _stderr()
    handler = _ConsoleLog(console)
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    progress = None if quiet else _Progress(console, cfg.log_every)
    previous_term = signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # `kill` keeps the work, like Ctrl-C
    try:
        result = run_transfer(cfg, callbacks=progress, resume=resume)
        if progress and result.stop_reason:
            progress.stopped_early(len(result.history), result.stop_reason)
    except KeyboardInterrupt:
        _fail("interrupted before the optimization got going; nothing was written.", 130)
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if progress:
            progress.stop()
        log.removeHandler(handler)
    final = result.output_losses or (result.history[-1] if result.history else None)
    if not quiet and final:
        tv = f", tv {final.tv:.4g}" if cfg.tv_weight else ""
        console.print(soft_wrap=True, *[f"done: {len(result.history)} steps in {result.timings['optimize_s']:.1f} s "
                      f"(setup {result.timings['setup_s']:.1f} s); output total {final.total:.4g} "
                      f"(style {final.style:.4g}, content {final.content:.4g}{tv}); weights: {result.weights}"])
    if result.interrupted:
        console.print(f"[yellow]interrupted at step {len(result.history)}: the image so far and the logs were written.[/]")
    elif result.status != "completed" and not quiet:  # diverged also logs a warning, which --quiet keeps
        why = f": {result.stop_reason}" if result.stop_reason else ""
        console.print(f"status: {result.status} after {len(result.history)} steps{why} (see {result.paths['json']})")
    if cfg.profile and result.profile is not None and not quiet:
        console.print(result.profile.table(), soft_wrap=True, markup=False, highlight=False)
    print(result.paths["image"])
    if result.interrupted:
        raise typer.Exit(130)


# ---- batch: many runs on a process pool or a Ray cluster (stylize/cli/batch.py, over stylize/batches.py) ----------
from . import batch as _batch  # noqa: E402  (its own module: the command and its progress bar)

app.command(name="batch", epilog=_batch.EPILOG)(config_options(_batch.batch))


@app.command(epilog="Examples:\n\n"
             "  stylize video clip.mp4 painting.jpg -o styled.mp4 --size 256            # audio copied\n\n"
             "  stylize video clip.mp4 painting.jpg -o frames/ --frames 1:48 --fps 12   # a folder of PNGs\n\n"
             "  stylize video anim.gif painting.jpg -o out.mp4 --first-steps 300 --steps 100 --temporal-weight 1e4\n\n"
             "  stylize video clip.mp4 painting.jpg -o styled.mp4 --encode-partial   # after Ctrl-C: encode what is done")
@config_options(help={"steps": rf"Evaluations of each LATER frame (frame 1: --first-steps) \[default: {video_lib.VideoConfig.steps}]"})
def video(
    input_: Annotated[Path, typer.Argument(metavar="IN", help="A video file, a folder of frames, or an animated GIF/WebP.", show_default=False)],
    style: Annotated[Optional[list[Path]], typer.Argument(help="Style image(s); several are blended (default: the bundled demo).", show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="A video (.mp4, .mov, .mkv, .avi: the input's fps, its audio copied) or a folder of frames (no extension).", show_default=False)] = ...,
    frames: Annotated[Optional[str], typer.Option(help="Only these frames, given as A:B (1-based, inclusive; A: to the end) \\[default: all].", show_default=False)] = None,
    fps: Annotated[Optional[float], typer.Option(help="Resample to this frame rate (same duration) \\[default: the input's].", show_default=False, min=0.01)] = None,
    first_steps: Annotated[Optional[int], typer.Option(help="Evaluations of frame 1, the normal schedule \\[default: the config's steps].", show_default=False, min=1)] = None,
    temporal_weight: Annotated[Optional[float], typer.Option(help=help_text("Weight of the temporal term: each later frame held to the warped previous output.", "temporal_weight"), show_default=False)] = None,
    encode_partial: Annotated[bool, typer.Option("--encode-partial", help="On Ctrl-C (or a corrupt frame), also encode the frames done so far.")] = False,
    report: Annotated[bool, typer.Option("--report", help="Print per-frame seconds and the temporal warp error; write <work>/report.json.")] = False,
    independent: Annotated[bool, typer.Option("--independent", help="Baseline for --report: every frame stylized on its own, as frame 1.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or info; warnings and errors only.")] = False,
    *,
    options: ConfigOptions,
) -> None:
    r"""Stylize a clip frame by frame, temporally coherent (Ruder et al. 2016): each later frame starts from the
    previous output warped by optical flow and is held to it where the flow is consistent. Here --steps counts
    each LATER frame's evaluations \[default: 100]; frame 1 runs --first-steps. Finished frames go to a work folder
    next to OUT (<stem>.frames/); rerun the same command to continue after Ctrl-C."""
    later = options.values["steps"]
    cfg = ConfigOptions({**options.values, "steps": None}).build(style=style, temporal_weight=temporal_weight)
    vcfg = video_lib.VideoConfig(str(input_), str(output), frames, fps, later or video_lib.VideoConfig.steps,
                                 first_steps, independent, encode_partial, report)
    console = _stderr()
    handler = _ConsoleLog(console)
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False

    def on_frame(f, total: int) -> None:
        if quiet:
            return
        what = "done earlier" if f.resumed else f"{f.seconds:.1f} s, {f.steps} steps"
        error = f"; warp error {f.warp_error:.4f} on {f.consistent:.0%} of the pixels" if f.warp_error is not None else ""
        console.print(f"frame {f.index + 1}/{total}: {what}{error}", soft_wrap=True)

    previous_term = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        result = video_lib.stylize_video(vcfg, cfg, on_frame=on_frame)
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        log.removeHandler(handler)
    if report:
        s = result.summary()
        show = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"frames {s['frames']}/{s['of']}; frame 1 {show(s['first_frame_s'], '.2f')} s; later frames (median) "
              f"{show(s['later_frame_s_median'], '.2f')} s (flow {show(s['flow_s_median'], '.3f')} s); "
              f"temporal warp error (mean) {show(s['warp_error_mean'], '.5f')}; {result.work / 'report.json'}")
    if result.status == "interrupted":
        done = len(result.frames)
        encoded = f"; encoded them to {result.output}" if result.encoded else "; add --encode-partial to encode them"
        console.print(f"[yellow]interrupted: {done} of {result.total} frames kept in {result.work}{encoded}. "
                      "Rerun the same command to continue.[/]", soft_wrap=True)
        raise typer.Exit(130)
    print(result.output)


@app.command(epilog="Examples:\n\n"
             "  stylize bench                                 # cpu, 256 and 512 px, the seed's layers\n\n"
             "  stylize bench --size 512 -c gatys --repeat 7 --json bench.json\n\n"
             "  stylize bench --device all --size 256 --quality")
def bench(
    device: Annotated[str, typer.Option(help="cpu | cuda | dlp-sim | all (a device that is not there is reported, not an error).")] = _BENCH.devices[0],
    size: Annotated[Optional[list[int]], typer.Option(help=f"Shorter edge in px; repeat for several. \\[default: {', '.join(map(str, _BENCH.sizes))}]", show_default=False)] = None,
    config: Annotated[str, typer.Option("--config", "-c", help="YAML config file or bundled name: its layers, weights and loss weights.")] = _BENCH.config,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any config key: --set key=value (repeatable).", show_default=False)] = None,
    repeat: Annotated[int, typer.Option(help="Timed evaluations per implementation, after one warm-up.", min=1, max=1000)] = _BENCH.repeat,
    quality: Annotated[bool, typer.Option("--quality", help="Also time-to-quality: how long ours takes to reach the best loss of the seed's 300 evaluations.")] = _BENCH.quality,
    json_: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON.", show_default=False)] = None,
    high_res: Annotated[bool, typer.Option("--high-res", help="Large sizes, ours only (CPU): the memory plan's evaluation (tiled under --set max_memory=SIZE) and the whole image where it fits; s/eval per megapixel, predicted and measured peak RSS.")] = _BENCH.high_res,
) -> None:
    """Time one evaluation (forward + losses + backward) of ours against the seed's code, interleaved, on the same
    weights and images (the bundled demo pair); report medians, GFLOP/s, % of this machine's conv peak and memory."""
    settings = bench_lib.BenchConfig([device], size or _BENCH.sizes, config, set_ or [], repeat, quality, high_res)
    if json_ is not None:
        images.check_output_path(json_, suffixes=(".json",))
    console = Console(highlight=False)
    if high_res:
        console.print(tables.HIGH_RES_HEADER)
        rows = bench_lib.bench_high_res(settings, on_row=lambda r: console.print(tables.high_res_row(r)))
        if json_ is not None:
            with AtomicFiles() as files:
                logs.write_json({"high_res": rows}, files.stage(json_))
            console.print(f"wrote {json_}")
        return
    table = tables.BenchTable(console, quality)
    result = bench_lib.bench(settings, on_row=table.add)
    table.finish(result)
    if json_ is not None:
        with AtomicFiles() as files:
            logs.write_json(result.as_dict(), files.stage(json_))
        console.print(f"wrote {json_}")


@weights_app.command("info", epilog="Example:\n\n  stylize weights info")
def weights_info() -> None:
    """Say which VGG19 weights are available and what --weights auto would use."""
    for key, value in weights.info().items():
        print(f"{key}: {value}")


@weights_app.command("import", epilog="Example:\n\n  stylize weights import ~/Downloads/vgg19-dcbb9e9d.pth")
def weights_import(
    file: Annotated[Path, typer.Argument(help=f"A copy of {weights.IMAGENET_FILE} (from {weights.IMAGENET_URL}).", show_default=False)],
) -> None:
    """Check a downloaded VGG19 ImageNet file against torchvision's hash and put it in the torch hub cache."""
    dest = weights.import_file(file)
    print(f"imported: {dest}")


@app.command(epilog="Examples:\n\n"
             "  stylize model                                 # the style model run would build, at 128 px\n\n"
             "  stylize model -c gatys --size 512 --weights untrained\n\n"
             "  stylize model --content photo.jpg --set style_layers=[relu1_1,relu3_1] --json model.json")
def model(
    ctx: typer.Context,
    size: Annotated[Optional[int], typer.Option(help=help_text("Shorter edge in px the shapes and FLOPs are for.", "size"), show_default=False)] = None,
    weights_: Annotated[Optional[str], typer.Option("--weights", help=help_text("auto | imagenet | untrained | PATH; with auto, the recipe follows as in run.", "weights"), show_default=False)] = None,
    content: Annotated[Optional[Path], typer.Option("--content", help="Image whose aspect ratio sets the shapes (default: the bundled demo content).", show_default=False)] = None,
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="YAML config file (or a bundled name: default, gatys, untrained).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any config key: --set key=value (repeatable).", show_default=False)] = None,
    json_: Annotated[Optional[Path], typer.Option("--json", help="Also write the table as JSON.", show_default=False)] = None,
) -> None:
    """Print the style model as run builds it: each layer (both names) with its output shape, parameters and forward
    FLOPs, the content/style loss modules with their weights, where the network is cut, and totals."""
    from .. import summary  # torch-heavy module: only for this command

    cfg = build_config(config, set_ or (), config_flags(ctx.params))
    if json_ is not None:
        images.check_output_path(json_, suffixes=(".json",))
    result = summary.model_table(cfg)
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 110)  # pipes and files: don't squeeze the table to 80 columns
    console.print(f"[bold]style model[/] at {result.width}x{result.height} px ({result.content}); weights: {result.weights}; "
                  f"recipe: {result.recipe}", soft_wrap=True)
    console.print(tables.model_table(result))
    mib = lambda b: f"{b / 2**20:,.1f} MiB"  # noqa: E731
    for line in (f"[bold]{result.cut_line()}[/]",
                 f"params: {result.params:,} ({mib(4 * result.params)} float32, frozen)",
                 f"FLOPs: forward {tables.si(result.forward_flops)}; per evaluation {tables.si(result.flops_per_eval)} (forward + "
                 "backward: conv input gradients and Gram backward, as `stylize bench` counts)",
                 f"memory: activations {mib(result.activation_bytes)} (each layer's output, float32, batch 1); "
                 f"loss targets {mib(result.targets_bytes)}",
                 *result.plan_lines, *result.notes):
        console.print(line, soft_wrap=True)
    if json_ is not None:
        with AtomicFiles() as files:
            logs.write_json(result.as_dict(), files.stage(json_))
        console.print(f"wrote {json_}")


# ---- compression (stylize.compress) ------------------------------------------------------------------------------

_PROBE = "Probe run of the score: shorter edge in px."


# The options prune and quantize share.
_CompressConfig = Annotated[Optional[str], typer.Option("--config", "-c", help="Config whose style model is compressed and probed \\[default: default].", show_default=False)]
_Sets = Annotated[Optional[list[str]], typer.Option("--set", help="Any config key: --set key=value (repeatable).", show_default=False)]
_Report = Annotated[bool, typer.Option("--report/--no-report", help="Score the result on a probe stylization.")]
_ProbeSize = Annotated[int, typer.Option(help=_PROBE, min=32)]
_ProbeSteps = Annotated[int, typer.Option(help="Probe run of the score: evaluations.", min=1)]


@app.command(epilog="Examples:\n\n"
             "  stylize prune --weights untrained -o pruned.pt                      # 30 % global L1, scored\n\n"
             "  stylize prune --method l1-structured --amount 0.25 -o small.pt       # 25 % of channels removed\n\n"
             "  stylize prune --layers conv_3 --layers conv_5 --no-report -o p.pt\n\n"
             "  stylize run --weights pruned.pt")
def prune(
    output: Annotated[Path, typer.Option("--output", "-o", help="The pruned state_dict (.pt); the report goes to <stem>.report.json.", show_default=False)],
    weights_: Annotated[str, typer.Option("--weights", help="auto | imagenet | untrained | PATH: the weights to prune.")] = _PRUNE.weights,
    method: Annotated[str, typer.Option(help="l1-unstructured | random-unstructured (global, the seed's) | l1-structured (whole output channels).")] = _PRUNE.method,
    amount: Annotated[float, typer.Option(help="Fraction of the weights (unstructured, global) or of each layer's channels (structured) to remove, in (0, 1).")] = _PRUNE.amount,
    layers: Annotated[Optional[list[str]], typer.Option("--layers", help="Convs to prune (repeatable) \\[default: every conv up to the config's last loss layer].", show_default=False)] = None,
    config: _CompressConfig = _PRUNE.config,
    set_: _Sets = None,
    report: _Report = _PRUNE.report,
    probe_size: _ProbeSize = _PRUNE.probe_size,
    probe_steps: _ProbeSteps = _PRUNE.probe_steps,
) -> None:
    """Prune VGG19's convs (the seed's torch.nn.utils.prune, made permanent, or channel pruning), print the
    per-layer table and the score; `stylize run --weights OUT` uses the result."""
    from ..compress import commands  # torch-heavy

    layer_names = [n.strip() for item in layers or [] for n in item.split(",") if n.strip()]
    console = Console(highlight=False, soft_wrap=True)
    result = commands.prune(PruneConfig(output, weights_, method, amount, layer_names, config, set_ or (), report,
                                        probe_size, probe_steps))
    if result.warning:
        _stderr().print(f"[bold yellow]warning:[/] [yellow]{result.warning}[/]", soft_wrap=True)
    console.print(f"[bold]stylize prune[/] {method} {amount:g} of {result.weights}")
    console.print(f"{'layer':<18} {'shape before':<18} {'shape after':<18} {'sparsity':>8} {'params before':>14} {'params after':>13}")
    for r in result.rows:
        mark = "" if r.pruned else "  (not pruned)"
        console.print(f"{r.name:<18} {str(r.shape_before):<18} {str(r.shape_after):<18} {r.sparsity:>8.1%} "
                      f"{r.params_before:>14,} {r.params_after:>13,}{mark}", markup=False)
    t = result.totals
    console.print(f"{'total':<56} {t['zeros'] / max(1, t['params_after']):>8.1%} {t['params_before']:>14,} {t['params_after']:>13,}",
                  markup=False)
    console.print(f"global sparsity of the pruned convs {t['sparsity_of_pruned_convs']:.2%}; "
                  f"channels removed {t['channel_fraction_removed']:.1%}; parameters {t['params_after'] / t['params_before']:.1%} of before")
    tables.print_score(console, result)
    print(result.output)


@app.command(epilog="Examples:\n\n"
             "  stylize quantize --weights untrained -o int8.pt                      # calibrated on the demo pair\n\n"
             "  stylize quantize --calibration photos/ -o int8.pt\n\n"
             "  stylize run --weights int8.pt; stylize run --weights int8.pt --device dlp-sim --dlp-mode int8")
def quantize(
    output: Annotated[Path, typer.Option("--output", "-o", help="The int8 artefact (.pt); the report goes to <stem>.report.json.", show_default=False)],
    weights_: Annotated[str, typer.Option("--weights", help="auto | imagenet | untrained | PATH: the weights to quantize.")] = _QUANTIZE.weights,
    dtype: Annotated[str, typer.Option(help="Weight type (per-channel, symmetric); activations are uint8 per tensor.")] = _QUANTIZE.dtype,
    calibration: Annotated[Optional[Path], typer.Option(help="Folder of images to calibrate activation scales on \\[default: the bundled demo pair].", show_default=False)] = None,
    config: _CompressConfig = _QUANTIZE.config,
    set_: _Sets = None,
    report: _Report = _QUANTIZE.report,
    probe_size: _ProbeSize = _QUANTIZE.probe_size,
    probe_steps: _ProbeSteps = _QUANTIZE.probe_steps,
) -> None:
    """Static post-training int8 quantization of the convs (torchao PT2E, x86 quantizer): per-channel int8 weights
    and calibrated activation scales. Runs int8 on CPU, dequantized in `stylize run`, calibrated on dlp-sim int8."""
    from ..compress import commands  # torch-heavy

    console = Console(highlight=False, soft_wrap=True)
    result = commands.quantize(QuantizeConfig(output, weights_, dtype, calibration, config, set_ or (), report,
                                              probe_size, probe_steps))
    t = result.totals
    if result.warning:
        _stderr().print(f"[bold yellow]warning:[/] [yellow]{result.warning}[/]", soft_wrap=True)
    console.print(f"[bold]stylize quantize[/] int8 (per-channel weights, calibrated uint8 activations) of {result.weights}; "
                  f"calibration: {t['calibration']} ({t['calibration_images']} images)")
    console.print(f"{'layer':<18} {'shape':<18} {'weight scales':<19} {'weight error':>12} {'input scale':>12} {'zero pt':>7}")
    for r in result.rows:
        console.print(f"{r['layer']:<18} {str(tuple(r['shape'])):<18} {r['weight_scale_min']:.2e}..{r['weight_scale_max']:.2e} "
                      f"{r['weight_error']:>12.2%} {r['input_scale']:>12.3e} {r['input_zero_point']:>7}", markup=False)
    console.print(f"{t['convs']} convs, {t['params']:,} parameters")
    tables.print_score(console, result)
    print(result.output)
