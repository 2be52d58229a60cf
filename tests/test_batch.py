"""stylize batch: jobs and their validation, job ids, the ledger, rerun and resume, failures, dead workers, and
the Ray backend against the local one (a local Ray cluster on 127.0.0.1, started and torn down here)."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylize import batches as batch, ledger, workers
from stylize.config import build_config
from stylize.errors import StylizeError
from stylize.transfer import run as run_transfer
from conftest import write_clip

TINY = {"size": 32, "steps": 3, "weights": "untrained", "device": "cpu"}


def _image(path: Path, seed: int, size=(40, 32)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8")).save(path)
    return path


@pytest.fixture
def pair(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "art").mkdir()
    contents = [_image(tmp_path / "photos" / f"p{i}.png", i) for i in range(2)]
    styles = [_image(tmp_path / "art" / f"s{i}.png", 10 + i, (32, 32)) for i in range(2)]
    return tmp_path, contents, styles


def _bc(tmp_path, content, style, **kw) -> batch.BatchConfig:
    return batch.BatchConfig([str(c) for c in content], [str(s) for s in style], str(tmp_path / "out"),
                             overrides={**TINY, **kw.pop("overrides", {})}, **kw)


def _events(tmp_path) -> list[dict]:
    return ledger.read(tmp_path / "out" / ledger.NAME)


# ---- jobs, validation, ids (no runs) --------------------------------------------------------------------------------

def test_contents_times_styles_from_folders_and_globs(pair):
    tmp, contents, styles = pair
    jobs = batch.jobs(_bc(tmp, [tmp / "photos"], [str(tmp / "art" / "s*.png")]))
    assert [j.output.name for j in jobs] == ["p0__s0.png", "p0__s1.png", "p1__s0.png", "p1__s1.png"]
    assert all(j.config.steps == 3 and j.output.parent == tmp / "out" for j in jobs)
    assert len({j.id for j in jobs}) == 4


def test_job_id_is_the_inputs_bytes_and_the_config(pair):
    tmp, contents, styles = pair
    before = {j.output.name: j.id for j in batch.jobs(_bc(tmp, contents, styles))}
    assert before == {j.output.name: j.id for j in batch.jobs(_bc(tmp, contents, styles))}  # stable
    _image(styles[1], 99, (32, 32))  # new bytes, same name: only s1's jobs change
    after = {j.output.name: j.id for j in batch.jobs(_bc(tmp, contents, styles))}
    assert [n for n in before if before[n] != after[n]] == ["p0__s1.png", "p1__s1.png"]
    steps = {j.output.name: j.id for j in batch.jobs(_bc(tmp, contents, styles, overrides={"steps": 4}))}
    assert not set(steps.values()) & set(after.values())  # a config key changes every job's id
    # A reference: the id hashes the config with the images as their sha256, the output as its name.
    cfg = batch.jobs(_bc(tmp, contents[:1], styles[:1]))[0].config
    same = dataclasses.replace(cfg, content=str(tmp / "copy.png"), output="elsewhere/p0__s0.png")
    (tmp / "copy.png").write_bytes(contents[0].read_bytes())
    assert batch.job_id(same) == batch.job_id(cfg)


@pytest.mark.parametrize("make, message", [
    (lambda t: ("m.yaml", f"- {{content: {t}/photos/p0.png, style: {t}/art/s0.png, stpes: 4}}\n"),
     "m.yaml row 1: unknown key 'stpes'. Did you mean 'steps'?"),
    (lambda t: ("m.csv", f"content,style,steps\n{t}/photos/p0.png,{t}/art/s0.png,4\n{t}/photos/p9.png,{t}/art/s0.png,\n"),
     "m.csv row 2: "),
    (lambda t: ("m.jsonl", f'{{"content": "{t}/photos/p0.png", "style": "{t}/art/s0.png", "steps": "many"}}\n'),
     "m.jsonl row 1: steps: expected a whole number"),
    (lambda t: ("m.jsonl", f'{{"content": "{t}/photos/p0.png"}}\n'), "m.jsonl row 1: no style."),
])
def test_manifest_rows_are_validated_before_any_job(pair, make, message):
    tmp, _, _ = pair
    name, text = make(tmp)
    (tmp / name).write_text(text)
    with pytest.raises(StylizeError) as e:
        batch.run(batch.BatchConfig(manifest=str(tmp / name), output=str(tmp / "out"), overrides=TINY))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp / "out").exists()  # nothing started, nothing written


def test_manifest_relative_paths_and_overrides(pair):
    tmp, _, _ = pair
    (tmp / "m.csv").write_text("content,style,steps,size\nphotos/p0.png,art/s0.png;art/s1.png,5,\nphotos/p1.png,art/s1.png,,40\n")
    a, b = batch.jobs(batch.BatchConfig(manifest=str(tmp / "m.csv"), output=str(tmp / "out"), overrides=TINY))
    assert (a.config.steps, a.config.size, a.output.name) == (5, 32, "p0__s0+s1.png")
    assert (b.config.steps, b.config.size) == (3, 40)


@pytest.mark.parametrize("spec, message", [("empty", "the folder holds no image"), ("*.nothing", "the glob matches no file"),
                                           ("nope.png", "no such file or folder")])
def test_empty_folder_glob_or_missing_file(pair, spec, message):
    tmp, _, styles = pair
    (tmp / "empty").mkdir()
    with pytest.raises(StylizeError, match=message):
        batch.jobs(_bc(tmp, [str(tmp / spec)], styles))


def _wtg(p: workers.Plan) -> tuple[int, int, int]:
    return p.workers, p.threads, p.gpus


def test_plan_workers_and_threads():
    cfgs = [build_config(overrides=TINY)] * 4
    assert _wtg(workers.plan(cfgs, cpus=2, gpus=0, free_bytes=2**40))[:3] == (2, 1, 0)
    assert _wtg(workers.plan(cfgs, workers=1, cpus=2, gpus=0))[:3] == (1, 2, 0)
    assert _wtg(workers.plan(cfgs[:1], cpus=8, gpus=0, free_bytes=2**40))[:3] == (1, 8, 0)
    per_job = workers.job_bytes(cfgs[0])
    assert _wtg(workers.plan(cfgs, cpus=8, gpus=0, free_bytes=2 * per_job + 1))[:2] == (2, 4)  # memory bounds the workers
    assert _wtg(workers.plan([build_config(overrides={**TINY, "device": "cuda"})] * 4, cpus=8, gpus=2))[:3] == (2, 4, 1)


# ---- runs on the local pool --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_batch_runs_records_failures_and_reruns_only_what_changed(pair):
    tmp, contents, styles = pair
    broken = tmp / "photos" / "broken.png"
    broken.write_bytes(b"not an image")
    result = batch.run(_bc(tmp, [tmp / "photos"], styles[:1], workers=2))
    by_name = {Path(r["output"]).name: r for r in result.records}
    assert [by_name[n]["status"] for n in ("broken__s0.png", "p0__s0.png", "p1__s0.png")] == ["failed", "done", "done"]
    assert "cannot read image" in by_name["broken__s0.png"]["error"] and result.exit_code == 1
    # The batch's image is `stylize run`'s, bit for bit (same config, same threads).
    cfg = batch.jobs(_bc(tmp, contents[:1], styles[:1]))[0].config
    torch.set_num_threads(1)
    reference = run_transfer(dataclasses.replace(cfg, output=str(tmp / "ref.png")))
    assert (tmp / "ref.png").read_bytes() == Path(by_name["p0__s0.png"]["output"]).read_bytes()
    final = reference.output_losses or reference.history[-1]
    assert by_name["p0__s0.png"]["losses"]["total"] == final.total
    n = len(_events(tmp))
    again = batch.run(_bc(tmp, [tmp / "photos"], styles[:1], workers=2))
    assert again.skipped == 3 and len(_events(tmp)) == n and again.exit_code == 1  # failed ones are kept, not redone
    _image(contents[1], 77)  # p1 changed: only its job runs
    third = batch.run(_bc(tmp, [tmp / "photos"], styles[:1], workers=2))
    new = _events(tmp)[n:]
    assert third.skipped == 2 and {Path(e["output"]).name for e in new} == {"p1__s0.png"}
    assert [e["status"] for e in new] == ["started", "done"]
    fixed = batch.run(_bc(tmp, [tmp / "photos"], styles[:1], workers=1, retry_failed=True))
    assert [e["status"] for e in _events(tmp)[n + 2:]] == ["started", "failed"] and fixed.skipped == 2


def _kill_first_worker(tmp, started_after: float = 1.0) -> int:
    """Wait for a job to start, let it run a moment, SIGKILL its worker; returns the pid."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = [e for e in _events(tmp) if e["status"] == "started"]
        if started:
            time.sleep(started_after)
            os.kill(started[0]["worker"], signal.SIGKILL)
            return started[0]["worker"]
        time.sleep(0.1)
    raise AssertionError("no job started")


def _check_retried(tmp, pid: int, jobs: int) -> None:
    events = _events(tmp)
    done = [e for e in events if e["status"] == "done"]
    assert sorted(e["id"] for e in done) == sorted({e["id"] for e in events}) and len(done) == jobs  # once each
    killed = [e for e in events if e.get("worker") == pid]
    assert [e["status"] for e in killed] == ["started", "retried"] and "died" in killed[1]["error"]
    job = [e for e in events if e["id"] == killed[0]["id"]]
    assert [(e["status"], e["attempt"]) for e in job] == [("started", 1), ("retried", 1), ("started", 2), ("done", 2)]
    assert job[-1]["worker"] != pid
    assert all(Path(e["output"]).is_file() for e in done)


@pytest.mark.slow
def test_an_unreachable_address_is_one_line_within_30_s(pair):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # joined already (the fixture below): an --address is not dialled again
        pytest.skip("a Ray instance is up in this process; this test runs before the Ray fixture's tests")
    tmp, contents, styles = pair
    t0 = time.monotonic()
    with pytest.raises(StylizeError, match=r"--address 127.0.0.1:1: no Ray cluster answered"):
        batch.run(_bc(tmp, contents, styles, backend="ray", address="127.0.0.1:1"))
    assert time.monotonic() - t0 < 30
    assert not (tmp / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_killed_worker_s_job_is_retried(pair, backend, request):
    if backend == "ray":
        request.getfixturevalue("ray_cluster")  # a local cluster on 127.0.0.1, shared by the module's Ray tests
    tmp, contents, styles = pair
    bc = _bc(tmp, contents[:1], styles[:1], workers=1, backend=backend, overrides={"steps": 20})
    out: list = []
    thread = threading.Thread(target=lambda: out.append(batch.run(bc)))
    thread.start()
    pid = _kill_first_worker(tmp)
    thread.join(300)
    assert out and out[0].exit_code == 0
    _check_retried(tmp, pid, 1)


# ---- the command --------------------------------------------------------------------------------------------------

def test_cli_usage_errors_are_one_line_exit_2(pair):
    from typer.testing import CliRunner

    from stylize.cli.app import app

    tmp, contents, styles = pair
    (tmp / "m.yaml").write_text(f"- {{content: {contents[0]}, style: {tmp}/missing.png}}\n")
    for args in (["--manifest", str(tmp / "m.yaml")], [str(tmp / "nothing*.png"), "--style", str(styles[0])],
                 [str(contents[0]), "--style", str(styles[0]), "--backend", "spark"]):
        result = CliRunner().invoke(app, ["batch", *args, "-o", str(tmp / "out")])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp / "out").exists()


@pytest.mark.slow
def test_cli_exit_1_lists_the_failed_job(pair):
    from typer.testing import CliRunner

    from stylize.cli.app import app

    tmp, contents, styles = pair
    (tmp / "bad.png").write_text("not an image")
    args = [str(contents[0]), str(tmp / "bad.png"), "--style", str(styles[0]), "-o", str(tmp / "out"),
            "--size", "32", "--steps", "2", "--weights", "untrained", "--device", "cpu"]
    result = CliRunner().invoke(app, ["batch", *args])
    assert result.exit_code == 1, result.output
    assert "1 done, 1 failed" in result.stderr and "failed: " in result.stderr and "bad__s0.png" in result.stderr


def test_python_api_is_stylize_batch(pair):
    import stylize

    tmp, contents, styles = pair
    assert callable(stylize.batch) and stylize.batch is batch.batch
    with pytest.raises(StylizeError, match="glob matches no file"):
        stylize.batch(str(tmp / "none*.png"), styles, tmp / "out", size=32)


@pytest.mark.slow
def test_ctrl_c_marks_running_jobs_interrupted_exits_130_and_the_rerun_resumes(pair):
    import subprocess
    import sys

    tmp, contents, styles = pair
    args = [sys.executable, "-m", "stylize", "batch", *map(str, contents[:1]), "--style", str(styles[0]), "-o",
            str(tmp / "out"), "--workers", "1", "--size", "32", "--steps", "2000", "--weights", "untrained", "--device", "cpu"]  # ~2 s: its plateau
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)
    deadline = time.monotonic() + 120
    while not any(e["status"] == "started" for e in _events(tmp)) and time.monotonic() < deadline:
        time.sleep(0.1)
    worker = _events(tmp)[0]["worker"]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert [e["status"] for e in _events(tmp)] == ["started", "interrupted"] and "interrupted" in err
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # the worker was stopped with the batch
    result = batch.run(_bc(tmp, contents[:1], styles[:1], workers=1, overrides={"steps": 2000}))  # the same job: resumed
    events = _events(tmp)
    assert result.exit_code == 0 and result.skipped == 0 and events[2]["id"] == events[0]["id"]
    assert [e["status"] for e in events][2:] == ["started", "done"]


# ---- Ray --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_results_equal_local_bitwise(pair, ray_cluster):
    tmp, contents, styles = pair
    local = batch.run(_bc(tmp, contents, styles[:1], workers=1))
    remote = batch.run(dataclasses.replace(_bc(tmp, contents, styles[:1], workers=1, backend="ray"),
                                           output=str(tmp / "ray")))
    assert [r["id"] for r in local.records] == [r["id"] for r in remote.records]
    for a, b in zip(local.records, remote.records):
        assert a["status"] == b["status"] == "done" and a["losses"] == b["losses"]
        assert Path(a["output"]).read_bytes() == Path(b["output"]).read_bytes()
    assert {e["backend"] for e in ledger.read(tmp / "ray" / ledger.NAME) if e["status"] == "started"} == {"ray"}


def test_ray_missing_or_unreachable_is_one_line(pair, monkeypatch):
    tmp, contents, styles = pair
    with pytest.raises(StylizeError, match="add --backend ray"):
        batch.run(_bc(tmp, contents, styles, address="auto"))
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(StylizeError, match=r"pip install 'stylize\[ray\]'"):
        batch.run(_bc(tmp, contents, styles, backend="ray"))


# ---- videos: one video per worker (stylize video's code), beside image jobs ----------------------------------------

def _clip(path: Path, n: int = 3, fps: int = 10) -> Path:
    """A tiny H.264 clip: n frames of 32x32 px, a smooth gradient shifting by 2 px a frame."""
    base = np.linspace(0, 255, 48)[None, :, None] * np.array([1.0, 0.6, 0.3]) + np.linspace(0, 60, 32)[:, None, None]
    return write_clip(path, [base[:, 2 * k:2 * k + 32].clip(0, 255).astype(np.uint8) for k in range(n)], fps)


def test_a_video_content_is_a_video_job(pair, monkeypatch):
    tmp, contents, styles = pair
    _clip(tmp / "photos" / "clip.mp4")
    gif = [Image.fromarray(np.full((32, 32, 3), 40 * k, np.uint8)) for k in range(3)]
    gif[0].save(tmp / "anim.gif", save_all=True, append_images=gif[1:], duration=100)
    jobs = batch.jobs(_bc(tmp, [tmp / "photos", tmp / "anim.gif"], styles[:1], video_steps=2))
    assert [(j.output.name, j.video is not None) for j in jobs] == [
        ("clip__s0.mp4", True), ("p0__s0.png", False), ("p1__s0.png", False), ("anim__s0.mp4", True)]
    clip = jobs[0]
    assert (clip.video.input, clip.video.output, clip.video.steps, clip.video.first_steps) == \
        (str(tmp / "photos" / "clip.mp4"), str(tmp / "out" / "clip__s0.mp4"), 2, None)  # frame 1: the config's steps
    # the id: the video's bytes, the config and the video settings
    again = batch.jobs(_bc(tmp, [tmp / "photos" / "clip.mp4"], styles[:1], video_steps=2))[0]
    assert again.id == clip.id == batch.job_id(clip.config, clip.video)
    assert batch.jobs(_bc(tmp, [tmp / "photos" / "clip.mp4"], styles[:1], video_steps=3))[0].id != clip.id
    assert batch.job_id(clip.config) != clip.id
    # no [video] extra: one line naming the job, before anything is written
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)
    with pytest.raises(StylizeError) as e:
        batch.run(_bc(tmp, [tmp / "photos"], styles[:1]))
    assert "clip.mp4" in str(e.value) and "stylize[video]" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp / "out").exists()


@pytest.mark.slow
def test_a_batch_of_an_image_and_a_video_equals_run_and_stylize_video(pair):
    av = pytest.importorskip("av")
    pytest.importorskip("cv2")
    from typer.testing import CliRunner

    from stylize.cli.app import app

    tmp, contents, styles = pair
    clip = _clip(tmp / "clip.mp4", n=3, fps=10)
    bc = _bc(tmp, [contents[0], clip], styles[:1], workers=2, video_steps=2)
    result = batch.run(bc)
    by_name = {Path(r["output"]).name: r for r in result.records}
    assert [by_name[n]["status"] for n in ("p0__s0.png", "clip__s0.mp4")] == ["done", "done"], result.records
    assert by_name["clip__s0.mp4"]["frames"] == 3 and by_name["clip__s0.mp4"]["fps"] == "10"
    assert "frames" not in by_name["p0__s0.png"]
    with av.open(str(tmp / "out" / "clip__s0.mp4")) as out:
        assert sum(1 for _ in out.decode(out.streams.video[0])) == 3 and out.streams.video[0].average_rate == 10
    # The video's frames are a plain `stylize video`'s with the same settings (frame 1: --steps 3, later: 2), bitwise.
    torch.set_num_threads(result.plan.threads)
    ref = CliRunner().invoke(app, ["video", str(clip), str(styles[0]), "-o", str(tmp / "ref.mp4"), "--size", "32",
                                   "--first-steps", "3", "--steps", "2", "--weights", "untrained", "--device", "cpu",
                                   "-q"])
    assert ref.exit_code == 0, ref.output
    for k in range(1, 4):
        a = np.asarray(Image.open(tmp / "ref.frames" / f"frame{k:06d}.png"))
        b = np.asarray(Image.open(tmp / "out" / "clip__s0.frames" / f"frame{k:06d}.png"))
        assert np.array_equal(a, b), f"frame {k} differs"
    n = len(_events(tmp))
    again = batch.run(bc)
    assert again.skipped == 2 and again.exit_code == 0 and len(_events(tmp)) == n
    # A video cut short (its output and last frame gone): the rerun redoes it from its first missing frame.
    frame3 = (tmp / "out" / "clip__s0.frames" / "frame000003.png").read_bytes()
    (tmp / "out" / "clip__s0.frames" / "frame000003.png").unlink()
    (tmp / "out" / "clip__s0.mp4").unlink()
    third = batch.run(bc)
    redone = _events(tmp)[n:]
    assert third.skipped == 1 and [(Path(e["output"]).name, e["status"]) for e in redone] == \
        [("clip__s0.mp4", "started"), ("clip__s0.mp4", "done")]
    assert redone[-1]["frames"] == 3 and redone[-1]["frames_resumed"] == 2
    assert np.array_equal(np.asarray(Image.open(tmp / "out" / "clip__s0.frames" / "frame000003.png")),
                          np.asarray(Image.open(__import__("io").BytesIO(frame3))))


@pytest.mark.slow
def test_a_video_on_ray_equals_the_local_pool_s(pair, ray_cluster):
    pytest.importorskip("cv2")
    tmp, contents, styles = pair
    clip = _clip(tmp / "clip.mp4", n=3)
    local = batch.run(_bc(tmp, [clip], styles[:1], workers=1, video_steps=2))
    remote = batch.run(dataclasses.replace(_bc(tmp, [clip], styles[:1], workers=1, video_steps=2, backend="ray"),
                                           output=str(tmp / "ray")))
    (a,), (b,) = local.records, remote.records
    assert a["id"] == b["id"] and a["status"] == b["status"] == "done" and a["frames"] == b["frames"] == 3
    for k in range(1, 4):
        name = f"clip__s0.frames/frame{k:06d}.png"
        assert (tmp / "out" / name).read_bytes() == (tmp / "ray" / name).read_bytes(), name


def _sigint_default() -> None:
    """In the child: SIGINT as a terminal gives it. A shell starting the suite in the background (nohup, `&`)
    passes SIGINT on ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
