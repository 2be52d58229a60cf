"""``stylize batch``: many runs, resumable, on a local process pool or a Ray cluster.

(The module is ``batches``: ``stylize.batch`` is the Python API's function, :func:`batch` here.)

Jobs are every content x every style (files, folders, globs) or the rows of a manifest (YAML, CSV, JSONL: a
``content``, a ``style`` and any config key as that job's override). Every job is validated and its config built
before any starts: a bad row is one :class:`StylizeError` line naming it. A job's id hashes its input images'
bytes and its resolved config, so a rerun skips what is done (ledger ``done`` and the output there) and redoes
only the jobs whose inputs or settings changed. Each job is :func:`stylize.transfer.run` in a worker
(:mod:`stylize.workers`) and writes ``DIR/<content>__<style>.png`` with its logs; the ledger
(:mod:`stylize.ledger`) records every event. A content that is a video (or an animated GIF/WebP) is a video job:
:func:`stylize.video.stylize_video` in one worker, its frames in order, into ``DIR/<content>__<style>.mp4`` with its
work folder beside it (a rerun continues the video at its first missing frame). A job that fails is recorded and the batch goes on; a worker that
dies mid-job has its job retried on a fresh one.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from . import flow, frames, ledger, workers
from .config import FIELDS, Config, build_config, parse_sets
from .errors import StylizeError, did_you_mean
from .video import VideoConfig
from .yamlsafe import safe_yaml

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")
VIDEO_SUFFIXES = tuple(frames.VIDEO_FORMATS)  # a content with one of these is a video job (so is an animated GIF/WebP)
VIDEO_OUTPUT = ".mp4"
BACKENDS = ("local", "ray")
MAX_ATTEMPTS = 3  # a job whose worker dies is retried on a fresh worker, up to this many tries in all
ROW_KEYS = ("content", "style")  # besides config keys (output: the file name in DIR)


@dataclass
class BatchConfig:
    """What ``stylize batch`` was asked: the inputs, the settings every job shares, where and how to run."""

    content: list[str] = field(default_factory=list)  # files, folders, globs
    style: list[str] = field(default_factory=list)
    output: str = "outputs"  # the folder of the images, their logs and batch.jsonl
    config: str | None = None  # a YAML config (or a bundled name) for every job
    sets: list[str] = field(default_factory=list)  # --set key=value for every job
    overrides: dict[str, Any] = field(default_factory=dict)  # config keys (CLI flags, keyword arguments)
    manifest: str | None = None
    workers: int | None = None  # none: planned from cores, memory and GPUs
    backend: str = "local"  # local | ray
    address: str | None = None  # ray: auto | HOST:PORT | ray://HOST:PORT; none: start a local cluster
    retry_failed: bool = False  # rerun the jobs that failed before (by default a rerun skips them)
    video_steps: int | None = None  # evaluations of each later frame of a video job (frame 1: steps); none: VideoConfig's


@dataclass
class Job:
    id: str
    row: str  # where it came from, for messages: "content a.jpg x style b.jpg" or "jobs.csv row 3"
    config: Config
    video: VideoConfig | None = None  # a video job: stylize_video(video, config); else transfer.run(config)

    @property
    def output(self) -> Path:
        return Path(self.config.output)


@dataclass
class BatchResult:
    records: list[dict[str, Any]]  # each job's latest ledger event, in job order (skipped jobs: their old one)
    ledger: Path
    plan: workers.Plan | None
    skipped: int
    seconds: float

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "done"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


# ---- the jobs -----------------------------------------------------------------------------------------------------

def expand(spec: str, what: str) -> list[Path]:
    """A file, a folder (its images, and a content folder's videos, sorted) or a glob, as files; an empty folder or
    glob is an error."""
    if any(c in spec for c in "*?["):
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not found:
            raise StylizeError(f"{what} {spec}: the glob matches no file.")
        return found
    path = Path(spec)
    if path.is_dir():
        suffixes = IMAGE_SUFFIXES + (VIDEO_SUFFIXES if what == "content" else ())
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not found:
            raise StylizeError(f"{what} {spec}: the folder holds no image ({', '.join(IMAGE_SUFFIXES)}).")
        return found
    if not path.is_file():
        raise StylizeError(f"{what} {spec}: no such file or folder.")
    return [path]


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a YAML (a list of mappings, or ``jobs:`` holding one), CSV (a header row; empty cells are not
    given) or JSONL manifest; values as YAML reads them (``steps: 50``, ``style: [a.jpg, b.jpg]``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise StylizeError(f"cannot read manifest {path}: {getattr(e, 'strerror', None) or e}") from None
    kind = path.suffix.lower()
    try:
        if kind in (".yaml", ".yml"):
            data = safe_yaml(text, str(path))
            rows = data.get("jobs") if isinstance(data, dict) else data
        elif kind == ".csv":
            rows = [{k.strip(): v for k, v in r.items() if k and v not in (None, "")}
                    for r in csv.DictReader(text.splitlines())]
            rows = [{k: _cell(path, i, k, v) for k, v in r.items()} for i, r in enumerate(rows, 1)]
        elif kind in (".jsonl", ".ndjson"):
            rows = []
            for i, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as e:
                        raise StylizeError(f"{path} row {i}: not JSON ({e.msg}).") from None
        else:
            raise StylizeError(f"manifest {path}: expected .yaml, .yml, .csv or .jsonl.")
    except StylizeError:
        raise
    except Exception as e:  # YAML and CSV syntax errors
        raise StylizeError(f"manifest {path}: cannot parse it: {str(e).splitlines()[0]}") from None
    if not isinstance(rows, list) or not rows:
        raise StylizeError(f"manifest {path}: expected a list of jobs (content, style and config keys), found none.")
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise StylizeError(f"{path} row {i}: expected a mapping of content, style and config keys.")
    return rows


def _cell(path: Path, i: int, key: str, value: str) -> Any:
    if key in ROW_KEYS:
        return value.split(";") if key == "style" and ";" in value else value
    try:
        return parse_sets([f"{key}={value}"])[key]
    except StylizeError as e:
        raise StylizeError(f"{path} row {i}: {e}") from None


def is_video(content: Path) -> bool:
    """A video file (by its extension) or an animated GIF/WebP (more than one frame, from the header)."""
    suffix = content.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix in (".gif", ".webp"):
        try:
            with Image.open(content) as img:
                return getattr(img, "n_frames", 1) > 1
        except OSError:  # unreadable: its image job says so
            return False
    return False


def output_name(content: Path, styles: Sequence[Path], video: bool = False) -> str:
    return f"{content.stem}__{'+'.join(s.stem for s in styles)}{VIDEO_OUTPUT if video else '.png'}"


def jobs(bc: BatchConfig) -> list[Job]:
    """Every job with its config and id, all validated before any runs."""
    out_dir = Path(bc.output)
    rows: list[tuple[str, Path, list[Path], dict[str, Any]]] = []
    if bc.manifest:
        base = Path(bc.manifest).parent
        for i, row in enumerate(read_manifest(bc.manifest), 1):
            where = f"{bc.manifest} row {i}"
            row = {str(k).replace("-", "_"): v for k, v in row.items()}
            for key in row:
                if key not in FIELDS:
                    hint = did_you_mean(key, [*FIELDS]) or " Give content, style and config keys."
                    raise StylizeError(f"{where}: unknown key '{key}'.{hint}")
            for key in ROW_KEYS:
                if not row.get(key):
                    raise StylizeError(f"{where}: no {key}. Every row needs content and style.")
            styles = row.pop("style")
            styles = [styles] if isinstance(styles, str) else styles
            if not isinstance(styles, list) or not all(isinstance(s, str) and s for s in styles):
                raise StylizeError(f"{where}: style: expected a file path or a list of them.")
            found = []
            for name in [row.pop("content"), *styles]:
                path = Path(name) if Path(name).is_absolute() else base / name
                if not path.is_file():
                    raise StylizeError(f"{where}: {name}: no such file (paths are relative to the manifest's folder).")
                found.append(path)
            rows.append((where, found[0], found[1:], row))
    else:
        if not bc.content or not bc.style:
            raise StylizeError("give CONTENT images and --style images (files, folders or globs), or --manifest FILE.")
        contents = [p for spec in bc.content for p in expand(spec, "content")]
        styles = [p for spec in bc.style for p in expand(spec, "style")]
        rows = [(f"content {c} x style {s}", c, [s], {}) for c in contents for s in styles]
    out, names = [], {}
    for where, content, styles, row in rows:
        video = is_video(content)
        name = row.pop("output", None) or output_name(content, styles, video)
        output = out_dir / Path(name).name
        if video and output.suffix.lower() not in VIDEO_SUFFIXES:
            raise StylizeError(f"{where}: output {output.name}: the content is a video, so the output must be one "
                               f"({', '.join(VIDEO_SUFFIXES)}).")
        if output in names:
            raise StylizeError(f"{where} and {names[output]} would both write {output}. Rename an input, or give "
                               "each an output in a manifest.")
        names[output] = where
        try:
            cfg = build_config(bc.config, bc.sets, overrides={**bc.overrides, **row, "content": str(content),
                                                              "style": [str(s) for s in styles], "output": str(output)})
        except StylizeError as e:
            raise StylizeError(f"{where}: {e}") from None
        vcfg = None
        if video:
            vcfg = VideoConfig(str(content), str(output), steps=bc.video_steps or VideoConfig.steps)
        out.append(Job(job_id(cfg, vcfg), where, cfg, vcfg))
    return out


def _digest(path: str | Path, memo: dict[str, str]) -> str:
    key = str(Path(path).resolve())
    if key not in memo:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError as e:
            raise StylizeError(f"cannot read {path}: {e.strerror}.") from None
        memo[key] = h.hexdigest()
    return memo[key]


def job_id(cfg: Config, video: VideoConfig | None = None) -> str:
    """A hash of the input images' (or video's) bytes (and an init or weights file's) and the resolved config, paths
    aside; a video job's settings too."""
    memo: dict[str, str] = {}
    settings = dataclasses.asdict(cfg)
    settings["content"] = _digest(cfg.content, memo)
    settings["style"] = [_digest(s, memo) for s in cfg.style]
    settings["output"] = Path(cfg.output).name
    for key in ("init", "weights"):
        if Path(settings[key]).is_file():
            settings[key] = _digest(settings[key], memo)
    if video is not None:
        settings["video"] = {k: v for k, v in dataclasses.asdict(video).items() if k not in ("input", "output")}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- the batch ----------------------------------------------------------------------------------------------------

def _describe(job: Job) -> dict[str, Any]:
    return {"id": job.id, "content": job.config.content, "style": job.config.style, "output": job.config.output}


def run(bc: BatchConfig, on_event: Callable[[dict[str, Any], dict[str, int]], None] | None = None,
        on_plan: Callable[[workers.Plan, dict[str, int]], None] | None = None) -> BatchResult:
    """Run the batch; every event goes to the ledger and to ``on_event(record, counts)`` (counts: total, done,
    failed, skipped, running); ``on_plan(plan, counts)`` hears the plan before the first job starts. Ctrl-C marks
    the running jobs interrupted and re-raises KeyboardInterrupt.

    Raises:
        StylizeError: bad input (before any job starts), an unreachable cluster, Ray missing.
    """
    t0 = time.perf_counter()
    if bc.backend not in BACKENDS:
        raise StylizeError(f"--backend {bc.backend}: unknown.{did_you_mean(bc.backend, BACKENDS)} Allowed: local, ray.")
    if bc.address and bc.backend != "ray":
        raise StylizeError("--address joins a Ray cluster: add --backend ray.")
    if bc.video_steps is not None and bc.video_steps < 1:
        raise StylizeError(f"--video-steps {bc.video_steps}: give 1 or more.")
    if bc.workers is not None and bc.workers < 1:
        raise StylizeError(f"--workers {bc.workers}: give 1 or more (or leave it out to plan from the cores).")
    if Path(bc.output).exists() and not Path(bc.output).is_dir():
        raise StylizeError(f"-o {bc.output}: a file of that name exists; the batch needs a folder. Choose another -o.")
    if bc.backend == "ray":
        workers.import_ray()
    all_jobs = jobs(bc)
    clip = next((j for j in all_jobs if j.video is not None), None)
    if clip is not None:  # the extra, now: one line before any job starts
        try:
            frames.require_av()
            flow._cv2()
        except StylizeError as e:
            raise StylizeError(f"{clip.row}: the content is a video: {e}") from None
    path = ledger.path_in(bc.output)
    previous = ledger.latest(ledger.read(path))
    todo, records = [], {}
    for job in all_jobs:
        last = previous.get(job.id)
        if last and ((last["status"] == "done" and job.output.is_file())
                     or (last["status"] == "failed" and not bc.retry_failed)):
            records[job.id] = last
        else:
            todo.append(job)
    skipped = len(all_jobs) - len(todo)
    counts = {"total": len(all_jobs), "done": sum(r["status"] == "done" for r in records.values()),
              "failed": sum(r["status"] == "failed" for r in records.values()), "skipped": skipped, "running": 0}
    if not todo:
        return BatchResult([records[j.id] for j in all_jobs], path, None, skipped, time.perf_counter() - t0)

    def event(job: Job, fields: dict[str, Any]) -> dict[str, Any]:
        row = ledger.append(path, {**_describe(job), **fields})
        records[job.id] = row
        if on_event:
            on_event(row, counts)
        return row

    started_ray = False
    if bc.backend == "ray":
        cpus = workers.cores()
        started_ray = workers.connect_ray(bc.address, cpus)
        cpus, gpus = workers.ray_resources()
        the_plan = workers.plan([j.config for j in todo], bc.workers, cpus=cpus, gpus=gpus,
                                free_bytes=None if bc.address is None else 0)
    else:
        the_plan = workers.plan([j.config for j in todo], bc.workers)
    if on_plan:
        on_plan(the_plan, counts)
    try:
        _loop(bc, todo, the_plan, event, counts)
    finally:
        if started_ray:
            workers.import_ray().shutdown()
    return BatchResult([records[j.id] for j in all_jobs], path, the_plan, skipped, time.perf_counter() - t0)


def _loop(bc: BatchConfig, todo: list[Job], the_plan: workers.Plan, event, counts: dict[str, int]) -> None:
    """Hand the jobs to the plan's workers one at a time; retry a dead worker's job on a fresh worker."""
    queue = [(job, 1) for job in todo]
    queue.reverse()  # pop() from the end: jobs start in order
    count = min(the_plan.workers, len(todo))
    if bc.backend == "ray":
        def make(i: int):
            return workers.RaySlot(the_plan.threads, the_plan.gpus)
        wait = workers.wait_ray
    else:
        def make(i: int):
            return workers.LocalSlot(the_plan.threads, i if the_plan.gpus else None)
        wait = workers.wait_local
    slots = [make(i) for i in range(count)]
    busy: dict[int, tuple[Job, int]] = {}  # slot index -> (job, attempt)
    try:
        for slot in slots:
            slot.ready()
        while queue or busy:
            for i, slot in enumerate(slots):
                if i not in busy and queue:
                    job, attempt = queue.pop()
                    slot.submit(job.config, job.video)
                    busy[i] = (job, attempt)
                    counts["running"] += 1
                    event(job, {"status": "started", "attempt": attempt, "worker": slot.pid,
                                "backend": bc.backend})
            wait([slots[i] for i in busy], 0.5)
            for i in list(busy):
                job, attempt = busy[i]
                try:
                    fields = slots[i].result()
                except workers.WorkerDied as e:
                    del busy[i]
                    counts["running"] -= 1
                    slots[i].close(force=True)
                    if attempt < MAX_ATTEMPTS:
                        event(job, {"status": "retried", "attempt": attempt, "worker": slots[i].pid, "error": str(e)})
                        queue.append((job, attempt + 1))
                    else:
                        counts["failed"] += 1
                        event(job, {"status": "failed", "attempt": attempt, "worker": slots[i].pid,
                                    "error": f"{e}; gave up after {attempt} tries"})
                    slots[i] = make(i)
                    slots[i].ready()
                    continue
                if fields is None:
                    continue
                del busy[i]
                counts["running"] -= 1
                counts["done" if fields["status"] == "done" else "failed"] += 1
                event(job, {**fields, "attempt": attempt, "worker": slots[i].pid})
    except KeyboardInterrupt:
        for i, (job, attempt) in busy.items():
            slots[i].close(force=True)
            event(job, {"status": "interrupted", "attempt": attempt, "worker": slots[i].pid})
        raise
    finally:
        for slot in slots:
            slot.close()


def batch(content: str | Path | Sequence[str | Path] = (), style: str | Path | Sequence[str | Path] = (),
          output: str | Path = "outputs", *, manifest: str | Path | None = None, config: str | Path | None = None,
          workers: int | None = None, backend: str = "local", address: str | None = None,
          retry_failed: bool = False, video_steps: int | None = None, **overrides: Any) -> list[dict[str, Any]]:
    """Stylize every content with every style (or a manifest's rows) into ``output``; returns each job's latest
    ledger record (``status`` done or failed, ``losses``, ``seconds``, ``error``...). Keyword arguments are
    :class:`Config` fields, for every job.

    >>> records = stylize.batch("photos/", "paintings/*.jpg", "out", size=256, steps=100)
    >>> [r["output"] for r in records if r["status"] != "done"]  # the failed ones, with r["error"]
    """
    as_list = lambda v: [str(v)] if isinstance(v, (str, Path)) else [str(x) for x in v]  # noqa: E731
    bc = BatchConfig(as_list(content), as_list(style), str(output), None if config is None else str(config),
                     overrides=overrides, manifest=None if manifest is None else str(manifest), workers=workers,
                     backend=backend, address=address, retry_failed=retry_failed, video_steps=video_steps)
    return run(bc).records


def summary(result: BatchResult) -> Mapping[str, Any]:
    return {"jobs": len(result.records), "done": sum(r["status"] == "done" for r in result.records),
            "failed": len(result.failed), "skipped": result.skipped, "seconds": round(result.seconds, 2)}
