"""Where a batch's jobs run: the job function, the plan of workers x threads, and the two kinds of worker.

Every job runs :func:`run_job`, which calls :func:`stylize.transfer.run` (the code path of ``stylize run``), or
for a video job :func:`stylize.video.stylize_video` (``stylize video``'s: one video per worker, its frames in
order), in a long-lived worker that keeps the weights file in memory between jobs. A worker is a *slot* the batch
loop hands one job at a time:

- :class:`LocalSlot`: a process (spawn) on this machine, fed through a pipe.
- :class:`RaySlot`: a Ray actor holding the model, placed by Ray anywhere on a cluster, with ``num_cpus``
  (the torch threads) and ``num_gpus`` from the plan.

Both report their process id, so the ledger says which worker ran a job, and both report a dead worker (killed,
out of memory) as :class:`WorkerDied`, on which the batch gives the job to a fresh worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import devices, features, images, memory, weights
from .config import Config
from .errors import StylizeError

RAY_CONNECT_TIMEOUT_S = 8.0  # an unreachable --address is refused well within 30 s
RAY_JOIN_TIMEOUT_S = 15.0
RAY_PLACE_TIMEOUT_S = 300.0  # a worker Ray cannot place (no node with its CPUs / GPU free) is an error, not a hang


# ---- the job ------------------------------------------------------------------------------------------------------

class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_job(cfg: Config, threads: int, gpu: int | None = None, video: Any = None) -> dict[str, Any]:
    """Run one job in this process; returns the fields of its ledger event (``done`` or ``failed``).

    ``video``: a :class:`stylize.video.VideoConfig` for a video job (its ledger event adds ``frames``, the output's
    frame count, and ``frames_resumed``, those a previous attempt had finished); none: an image job.

    ``threads``: torch's intra-op threads for this job (the same on every backend, so results are bitwise
    equal); ``gpu``: the GPU of this worker, which ``auto``/``cuda`` jobs run on.
    """
    from .transfer import run  # the commands layer's run; imported here so a worker's start-up stays light
    from .video import stylize_video

    torch.set_num_threads(threads)
    if gpu is not None and cfg.device in ("auto", "cuda"):
        cfg = dataclasses.replace(cfg, device=f"cuda:{gpu}")
    log = logging.getLogger("stylize")
    collect, level, propagate = _Collect(), log.level, log.propagate
    log.addHandler(collect)
    log.setLevel(logging.WARNING)
    log.propagate = False  # warnings go to the ledger, not to a worker's stderr
    if video is not None:  # the same work-folder settings (video.json) from any backend or folder: a rerun resumes
        cfg = dataclasses.replace(cfg, style=[str(Path(p).resolve()) for p in cfg.style])
    t0 = time.perf_counter()
    try:
        result = run(cfg) if video is None else stylize_video(video, cfg)
    except StylizeError as e:
        return {"status": "failed", "error": str(e), "seconds": round(time.perf_counter() - t0, 3)}
    except Exception as e:  # a bug: the batch goes on, and the ledger names it
        return {"status": "failed", "error": f"internal error: {type(e).__name__}: {e}".splitlines()[0],
                "seconds": round(time.perf_counter() - t0, 3)}
    finally:
        log.removeHandler(collect)
        log.setLevel(level)
        log.propagate = propagate
    if video is not None:
        resumed = sum(f.resumed for f in result.frames)
        return {"status": "done" if result.status == "completed" else "interrupted",
                "seconds": round(time.perf_counter() - t0, 3), "frames": len(result.frames), "fps": str(result.fps),
                "frames_resumed": resumed or None, "warnings": sorted(set(collect.messages)) or None}
    final = result.output_losses or (result.history[-1] if result.history else None)
    losses = {k: getattr(final, k) for k in ("total", "style", "content", "tv")} if final else None
    return {"status": "interrupted" if result.interrupted else "done", "seconds": round(time.perf_counter() - t0, 3),
            "losses": losses, "run_status": result.status, "steps_run": len(result.history),
            "warnings": sorted(set(collect.messages)) or None}


# ---- the plan -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    workers: int
    threads: int  # torch threads per worker (= the CPUs a Ray worker asks for)
    gpus: int  # GPUs per worker: 1 on CUDA, else 0
    why: str


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def job_bytes(cfg: Config) -> int:
    """The memory planner's estimate of one CPU job (``memory.run_bytes``) at its size and layers."""
    from PIL import Image

    size = cfg.size or 128
    try:
        with Image.open(cfg.content) as img:  # the header only
            w, h = img.size
    except Exception:  # an unreadable image fails in its job; plan as for a square
        w = h = size
    width, height = images.shorter_edge_size(w, h, size)
    cut = features.last_tap(cfg.content_layers, cfg.style_layers)
    return memory.run_bytes(width, height, cfg, cut, torch.device("cpu"))


def plan(configs: Sequence[Config], workers: int | None = None, cpus: int | None = None, gpus: int | None = None,
         free_bytes: int | None = None) -> Plan:
    """Workers x threads for these jobs.

    CUDA (a job asks for cuda, or auto with a GPU here): one worker per GPU. CPU: one single-threaded worker
    per core (small images do not scale across threads; independent jobs do), at most as many as jobs and as
    fit in free memory by the planner's estimate; the cores left over become threads. ``workers`` given: that
    many, the cores shared among them.
    """
    cpus = cpus or cores()
    n = max(1, len(configs))
    if gpus is None:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    on_gpu = gpus > 0 and any(c.device.startswith("cuda") or c.device == "auto" for c in configs)
    if on_gpu:
        count = workers or min(gpus, n)
        return Plan(count, max(1, cpus // count), 1, f"{gpus} GPU(s): one worker per GPU")
    need = max((job_bytes(c) for c in configs), default=memory.CPU_OVERHEAD_BYTES)
    free = free_bytes if free_bytes is not None else devices.available_memory(torch.device("cpu"))
    fit = max(1, free // need) if free else cpus
    if workers:
        return Plan(workers, max(1, cpus // workers), 0, f"{workers} worker(s) as asked, {cpus} cores")
    count = max(1, min(cpus, n, fit))
    why = f"{cpus} cores, {n} job(s), about {need / 2**30:.1f} GiB per job"
    return Plan(count, max(1, cpus // count), 0, why + (f", memory for {fit}" if fit < min(cpus, n) else ""))


# ---- workers ------------------------------------------------------------------------------------------------------

class WorkerDied(Exception):
    """The worker process is gone (killed, out of memory); its job was not finished."""


def _serve(conn, threads: int, gpu: int | None) -> None:
    """A local worker's loop: jobs in, ledger fields out, until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch's to handle: it stops the workers
    weights.keep_files_loaded()
    from . import transfer, video  # noqa: F401  (loaded before the first job: "started" means the job runs)

    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        cfg, video = task
        conn.send(run_job(cfg, threads, gpu, video))


class LocalSlot:
    """A worker process on this machine (spawned: a fresh interpreter, no forked torch state)."""

    def __init__(self, threads: int, gpu: int | None = None):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, threads, gpu), daemon=True, name="stylize-batch")
        self.process.start()
        child.close()
        self.pid = self.process.pid
        self.job: Any = None

    def ready(self) -> None:
        """Wait for the worker to have started (imports done)."""
        try:
            self.conn.recv()
        except (EOFError, OSError):
            self.process.join(1)
            raise StylizeError(f"a batch worker failed to start (exit code {self.process.exitcode}).") from None

    def submit(self, cfg: Config, video: Any = None) -> None:
        self.conn.send((cfg, video))

    def handles(self) -> list:
        return [self.conn, self.process.sentinel]

    def result(self) -> dict[str, Any] | None:
        """The job's ledger fields if it finished, None if still running; raises WorkerDied if the process is gone."""
        try:
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        else:
            if self.process.is_alive():
                return None
        self.process.join(1)
        raise WorkerDied(f"worker process {self.pid} died (exit code {self.process.exitcode})")

    def close(self, force: bool = False) -> None:
        if not force and self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.conn.close()


def wait_local(slots: Sequence[LocalSlot], timeout: float) -> None:
    from multiprocessing.connection import wait

    wait([h for s in slots for h in s.handles()], timeout)


# ---- Ray ----------------------------------------------------------------------------------------------------------

def import_ray():
    try:
        import ray
    except ImportError:
        raise StylizeError("--backend ray needs Ray, which is not installed: pip install 'stylize[ray]'.") from None
    return ray


def _check_reachable(address: str) -> None:
    """Refuse an unreachable ``host:port`` or ``ray://host:port`` within seconds (Ray itself retries for a minute)."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise StylizeError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT.")
    import grpc  # Ray's own dependency: both the GCS (HOST:PORT) and the Ray client server (ray://) speak gRPC

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=RAY_CONNECT_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        raise StylizeError(f"--address {address}: no Ray cluster answered there within {RAY_CONNECT_TIMEOUT_S:g} s. "
                           "Check the address (`ray status` on the head node), or leave --address out to run "
                           "locally.") from None
    finally:
        channel.close()


def connect_ray(address: str | None, cpus: int) -> bool:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) or start a local one on
    127.0.0.1 with ``cpus`` CPUs; returns whether this call started Ray (and so should shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address and address.startswith("ray://"):
            _bounded(lambda: ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR), address)
        elif address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(num_cpus=cpus, num_gpus=torch.cuda.device_count() if torch.cuda.is_available() else 0,
                     include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                     logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StylizeError(f"--address {address}: cannot join a Ray cluster: {first}") from None
    return True


def _bounded(connect, address: str) -> None:
    """Run ``connect`` (the Ray client's handshake, which retries for 30 s and more) with a deadline."""
    import threading

    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            connect()
            outcome.append(None)
        except BaseException as e:  # handed to the caller
            outcome.append(e)

    thread = threading.Thread(target=target, daemon=True, name="ray-connect")
    thread.start()
    thread.join(RAY_JOIN_TIMEOUT_S)
    if not outcome:
        raise StylizeError(f"--address {address}: the Ray client server there did not complete the handshake within "
                           f"{RAY_JOIN_TIMEOUT_S:g} s. Check the address and that the cluster runs the Ray client server "
                           "(port 10001 on the head node).")
    if outcome[0] is not None:
        raise outcome[0]


def ray_resources() -> tuple[int, int]:
    """The cluster's CPUs and GPUs."""
    res = import_ray().cluster_resources()
    return int(res.get("CPU", 1)), int(res.get("GPU", 0))


class _Worker:
    """The Ray actor: a worker process holding the weights between jobs."""

    def __init__(self, threads: int):
        weights.keep_files_loaded()
        self.threads = threads

    def pid(self) -> int:
        return os.getpid()

    def run(self, cfg: Config, video: Any = None) -> dict[str, Any]:
        gpus = import_ray().get_gpu_ids()
        # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU: inside, it is cuda:0.
        return run_job(cfg, self.threads, 0 if gpus else None, video)


class RaySlot:
    """A Ray actor with ``threads`` CPUs (and ``gpus`` GPUs); its process id is known once it has started."""

    def __init__(self, threads: int, gpus: int):
        ray = import_ray()
        self.ray = ray
        cls = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=0, max_task_retries=0)(_Worker)
        self.actor = cls.remote(threads)
        try:
            self.pid = ray.get(self.actor.pid.remote(), timeout=RAY_PLACE_TIMEOUT_S)  # the actor has started
        except ray.exceptions.GetTimeoutError:
            ray.kill(self.actor)
            raise StylizeError(f"Ray could not start a worker with {threads} CPU(s){' and 1 GPU' if gpus else ''} within "
                               f"{RAY_PLACE_TIMEOUT_S:g} s: no node has that free. Use --workers with a smaller "
                               "number of threads per worker (more workers), or add nodes.") from None

    def ready(self) -> None:
        pass
        self.ref = None
        self.job: Any = None

    def submit(self, cfg: Config, video: Any = None) -> None:
        # Absolute paths: the actor may run in another folder (or, with a shared file system, another node).
        absolute = lambda p: str(Path(p).resolve())  # noqa: E731
        cfg = dataclasses.replace(cfg, content=absolute(cfg.content), style=[absolute(s) for s in cfg.style],
                                  output=absolute(cfg.output))
        if video is not None:
            video = dataclasses.replace(video, input=absolute(video.input), output=absolute(video.output))
        self.ref = self.actor.run.remote(cfg, video)

    def result(self) -> dict[str, Any] | None:
        ready, _ = self.ray.wait([self.ref], timeout=0)
        if not ready:
            return None
        try:
            return self.ray.get(self.ref)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError) as e:
            raise WorkerDied(f"worker process {self.pid} died ({type(e).__name__})") from None

    def close(self, force: bool = False) -> None:
        try:
            self.ray.kill(self.actor)
        except Exception:  # already gone
            pass


def wait_ray(slots: Sequence[RaySlot], timeout: float) -> None:
    refs = [s.ref for s in slots if s.ref is not None]
    if refs:
        import_ray().wait(refs, num_returns=1, timeout=timeout)
