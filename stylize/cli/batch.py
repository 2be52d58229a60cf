"""``stylize batch``: the command and its one progress bar (jobs done/total, ETA, failures)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .. import batches as batch_lib
from .options import ConfigOptions, config_flags

EPILOG = ("Examples:\n\n"
          "  stylize batch photos/ --style paintings/ -o out --size 256 --steps 200\n\n"
          "  stylize batch 'shots/*.jpg' --style a.jpg --style b.jpg -o out --workers 2\n\n"
          "  stylize batch --manifest jobs.csv -o out -c untrained     # rows: content,style,any config key\n\n"
          "  stylize batch photos/ --style art/ -o out --backend ray --address auto   # an existing Ray cluster\n\n"
          "  stylize batch photos/ --style art/ -o out --retry-failed  # rerun: skips done jobs, redoes failed ones\n\n"
          "  stylize batch clips/ --style art/ -o out --steps 300 --video-steps 100   # one video per worker")


class BatchProgress:
    """One bar for the batch: jobs done/total, elapsed, ETA and failures; on a pipe, one line per finished job."""

    def __init__(self, console: Console, quiet: bool):
        self.console, self.quiet = console, quiet
        self.bar = Progress(TextColumn("[bold]batch"), BarColumn(bar_width=24), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                            TextColumn("{task.fields[status]}"), console=console)
        self.task = None

    def plan(self, plan: Any, counts: dict[str, int]) -> None:
        if not self.quiet:
            self.console.print(f"{counts['total']} jobs, {counts['skipped']} already done or failed (skipped); "
                               f"{plan.workers} worker(s) x {plan.threads} thread(s){' x 1 GPU' if plan.gpus else ''} "
                               f"({plan.why})", soft_wrap=True, markup=False)
        if self.console.is_terminal and not self.quiet:
            self.task = self.bar.add_task("batch", total=counts["total"], completed=counts["skipped"], status="")
            self.bar.start()

    def event(self, record: dict[str, Any], counts: dict[str, int]) -> None:
        status = f"{counts['failed']} failed" if counts["failed"] else ""
        if self.task is not None:
            self.bar.update(self.task, completed=counts["done"] + counts["failed"], status=status)
        if record["status"] in ("done", "failed", "retried") and not self.quiet and self.task is None:
            what = record.get("error") or f"{record.get('seconds', 0):.1f} s"
            self.console.print(f"{record['status']}: {record['output']} ({what})", soft_wrap=True, markup=False)

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def batch(
    content: Annotated[Optional[list[str]], typer.Argument(help="Content images or videos (each video is one job): files, folders, globs.", show_default=False)] = None,
    style: Annotated[Optional[list[str]], typer.Option("--style", "-s", help="Style images: files, folders, globs (repeatable); every content gets every style.", show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder of the images, their logs and the ledger batch.jsonl.")] = Path("outputs"),
    manifest: Annotated[Optional[Path], typer.Option(help="Jobs as rows (YAML, CSV, JSONL): content, style and any config key; paths relative to the manifest.", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes \\[default: planned from the cores, the memory estimate and the GPUs].", show_default=False)] = None,
    backend: Annotated[str, typer.Option(help="local (a process pool) | ray.")] = "local",
    address: Annotated[Optional[str], typer.Option(help="ray: auto | HOST:PORT | ray://HOST:PORT of an existing cluster \\[default: start a local one].", show_default=False)] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Redo the jobs that failed before (a rerun skips them otherwise).")] = False,
    video_steps: Annotated[Optional[int], typer.Option(help="Evaluations of each later frame of a video content (stylize video's --steps); its frame 1 runs --steps \\[default: 100].", show_default=False, min=1)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress; the summary and errors only.")] = False,
    *,
    options: ConfigOptions,
) -> None:
    """Stylize every CONTENT with every --style (or a --manifest's rows), resumably: DIR/<content>__<style>.png with
    its logs per job, and DIR/batch.jsonl, the ledger a rerun reads to skip what is done. A video CONTENT (or an
    animated GIF/WebP) is one job on one worker, its frames in order: DIR/<content>__<style>.mp4. Exit 0: all done; 1: some
    failed; 2: bad input; 130: Ctrl-C (finished jobs are kept)."""
    values = dict(options.values)
    config, sets = values.pop("config"), values.pop("set_") or []
    overrides = config_flags(values)
    bc = batch_lib.BatchConfig(content or [], style or [], str(output), config, list(sets), overrides,
                               None if manifest is None else str(manifest), workers, backend, address, retry_failed,
                               video_steps)
    console = Console(stderr=True, highlight=False)
    progress = BatchProgress(console, quiet)
    previous_term = signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # `kill` stops the batch as Ctrl-C does
    try:
        result = batch_lib.run(bc, on_event=progress.event, on_plan=progress.plan)
    except KeyboardInterrupt:
        progress.stop()
        console.print("[yellow]interrupted: finished jobs are kept, running ones marked interrupted in the ledger; "
                      "run the same command again to resume.[/]")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        progress.stop()
    s = batch_lib.summary(result)
    console.print(f"{s['done']} done, {s['failed']} failed, {s['skipped']} skipped, of {s['jobs']} jobs in "
                  f"{s['seconds']:.1f} s; ledger: {result.ledger}", soft_wrap=True, markup=False)
    for r in result.failed:
        console.print(f"failed: {r['output']}: {r.get('error', r['status'])}", soft_wrap=True, markup=False)
    print(output)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
