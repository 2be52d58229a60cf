"""Issue 14's hostile cases: each ends in one line and exit 2, or in the documented behaviour, with nothing
half-written."""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from stylize import images, logs, outputs
from stylize.cli import app

runner = CliRunner()
TINY = ["--size", "32", "--steps", "4", "--device", "cpu", "--scales", "none", "--weights", "untrained"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---- a full disk -------------------------------------------------------------------------------------------------


def test_full_disk_at_the_logs_keeps_the_image_and_says_what_was_not_written(pair, tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "write_csv", _enospc)
    out = tmp_path / "out.png"
    line = one_line(invoke("run", *pair, "-o", out, *TINY, "--quiet"))
    assert line == (f"error: wrote {out}; could not write {tmp_path / 'out.losses.csv'}, {tmp_path / 'out.run.json'}, "
                    f"{tmp_path / 'out.loss.png'}: No space left on device. Free some disk space, or write elsewhere with -o.")
    assert out.is_file() and images.load_image(out).size == (40, 32)
    assert not any((tmp_path / f"out.{s}").exists() for s in ("losses.csv", "run.json", "loss.png"))
    assert temporaries(tmp_path) == []


def test_full_disk_at_the_image_writes_nothing(pair, tmp_path, monkeypatch):
    monkeypatch.setattr(images, "save_image", _enospc)
    out = tmp_path / "out.png"
    line = one_line(invoke("run", *pair, "-o", out, *TINY, "--quiet"))
    assert line == f"error: cannot write {out}: No space left on device; nothing was written. Free some disk space, or write elsewhere with -o."
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == []
    assert temporaries(tmp_path) == []


def test_full_disk_at_a_checkpoint_is_a_warning_and_the_run_goes_on(pair, tmp_path, monkeypatch):
    real_save = torch.save

    def full(obj, f, *args, **kwargs):  # what torch's zip writer raises on ENOSPC
        if str(f).endswith(".tmp") and ".ckpt." in str(f):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "out.png"
    result = invoke("run", *pair, "-o", out, *TINY, "--checkpoint-every", 1, "--quiet")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "not saved" in line]
    assert warnings and all(w == f"warning: checkpoint {tmp_path / 'out.ckpt'} not saved ([enforce fail at inline_container.cc:672] . "
                            "unexpected pos 704 vs 598); the run goes on, and the previous checkpoint, if any, is kept."
                            for w in warnings)
    assert out.is_file() and (tmp_path / "out.run.json").is_file() and not (tmp_path / "out.ckpt").exists()
    assert temporaries(tmp_path) == []


def test_atomic_files_keep_nothing_by_default_on_a_failed_write(tmp_path):
    from stylize.errors import StylizeError

    with pytest.raises(StylizeError, match=r"cannot write .*b.txt: No space left on device; nothing was written"):
        with outputs.AtomicFiles() as files:
            files.stage(tmp_path / "a.txt").write_text("a")
            files.stage(tmp_path / "b.txt")
            _enospc()
    assert list(tmp_path.iterdir()) == []


# ---- outputs that would replace inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("link", [False, True], ids=["same name", "symlink"])
def test_save_every_never_overwrites_an_input(pair, tmp_path, link):
    step_file = tmp_path / "o.step0002.png"
    content = pair[0]
    if link:  # the content is elsewhere, and the step file a link to it
        step_file.symlink_to(content)
    else:
        content.rename(step_file)
        content = step_file
    before = content.read_bytes()
    line = one_line(invoke("run", content, pair[1], "-o", tmp_path / "o.png", *TINY, "--save-every", 2))
    assert line == f"error: --save-every 2 would write {step_file} over the input {content}; refusing. Choose another -o, or rename the input."
    assert content.read_bytes() == before and not (tmp_path / "o.png").exists()
    # A step the run would not write (3 is no multiple of 2) is no conflict.
    assert outputs.check_step_files(tmp_path / "o.png", 3, [content]) is None


def test_prune_refuses_to_replace_its_source(untrained_file, tmp_path):
    before = untrained_file.read_bytes()
    line = one_line(invoke("prune", "--weights", untrained_file, "-o", untrained_file, "--no-report"))
    assert line == (f"error: the artefact {untrained_file} is the weights file it is made from ({untrained_file}); "
                    "refusing to overwrite it. Choose another -o.")
    assert untrained_file.read_bytes() == before


# ---- names -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_runs_and_writes_everything(pair, tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff.png"  # Latin-1 bytes: not valid UTF-8
    os.rename(pair[0], raw)
    out = tmp_path / "out.png"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-m", "stylize", "run", raw, str(pair[1]), "-o", str(out), *TINY, "--quiet"],
                          capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert all((tmp_path / f"out.{s}").is_file() for s in ("png", "losses.csv", "run.json", "loss.png"))
    summary = json.loads((tmp_path / "out.run.json").read_text(encoding="utf-8"))
    assert os.fsencode(summary["content"]) == raw  # the name as it is on disk (JSON escapes the odd bytes)
    assert logs.printable(os.fsdecode(b"caf\xe9")) == "caf\ufffd"


def test_an_output_stem_too_long_for_the_log_names_is_refused_first(pair, tmp_path):
    out = tmp_path / ("a" * 245 + ".png")  # the image name fits in 255 bytes; <stem>.losses.csv does not
    line = one_line(invoke("run", *pair, "-o", out, *TINY))
    assert line.startswith("error: output name too long: ") and "this filesystem allows 255. Choose a shorter name with -o." in line
    assert temporaries(tmp_path) == [] and not out.exists()
    line = one_line(invoke("run", *pair, "-o", tmp_path / ("b" * 300 + ".png"), *TINY))  # the image's own name too
    assert "output name too long" in line or "File name too long" in line


# ---- torch's warnings, Pillow's limit, --quiet -------------------------------------------------------------------


@pytest.mark.parametrize("what", ["--weights", "--resume"])
def test_a_plain_pickle_is_one_line_without_torchs_warning(pair, tmp_path, what):
    path = tmp_path / "plain.pth"
    path.write_bytes(pickle.dumps({"features.0.weight": [1.0, 2.0]}, protocol=4))
    line = one_line(invoke("run", *pair, what, path, *(TINY[:-2] if what == "--weights" else TINY)))
    assert "UserWarning" not in line and str(path) in line


def test_an_image_over_the_pixel_limit_says_the_limit_and_how_to_pass_it(pair, monkeypatch):
    monkeypatch.setenv(images.MAX_PIXELS_VARIABLE, "1000")  # the 60x48 content has 2,880
    line = one_line(invoke("run", *pair, *TINY))
    assert line == (f"error: cannot read image {pair[0]}: 2,880 pixels, over the limit of 1,000 pixels (Pillow's guard "
                    f"against decompression bombs). To read it on purpose, raise the limit: STYLIZE_MAX_PIXELS=2880; "
                    "or scale the image down first.")
    monkeypatch.setenv(images.MAX_PIXELS_VARIABLE, "2880")
    assert images.load_image(pair[0]).size == (60, 48)


def test_quiet_prints_no_status_lines(pair, tmp_path):
    args = ["run", *pair, "-o", tmp_path / "d.png", *TINY, "--style-weight", "1e300", "--steps", "20"]
    loud = invoke(*args)
    assert loud.exit_code == 0 and "status: diverged" in loud.output
    quiet = invoke(*args, "--quiet")
    assert quiet.exit_code == 0 and "status:" not in quiet.output
    assert quiet.stdout.strip() == str(tmp_path / "d.png")


# ---- what a SIGKILL leaves ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_temporaries_of_a_killed_writer_are_removed_by_the_next_and_a_live_ones_kept(tmp_path):
    code = ("import sys, time; from stylize.outputs import AtomicFiles; f = AtomicFiles(); "
            "f.stage(sys.argv[1]).write_text('half'); print('staged', flush=True); time.sleep(120)")
    final = tmp_path / "out.png"
    killed = subprocess.Popen([sys.executable, "-c", code, str(final)], stdout=subprocess.PIPE, text=True)
    live = subprocess.Popen([sys.executable, "-c", code, str(final)], stdout=subprocess.PIPE, text=True)
    try:
        assert killed.stdout.readline().strip() == "staged" and live.stdout.readline().strip() == "staged"
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        left = temporaries(tmp_path)
        assert len(left) == 2 and all(n.startswith(".out.png.") for n in left)
        with outputs.AtomicFiles() as files:
            files.stage(final).write_text("done")
        assert final.read_text() == "done"
        assert temporaries(tmp_path) == [n for n in left if f".{live.pid}." in n]  # the live writer's stays
    finally:
        live.kill()
        live.wait(30)


# ---- YAML ------------------------------------------------------------------------------------------------------


def _bomb(depth: int = 7) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth)]
    return "\n".join(lines) + f"\nsteps: *a{depth - 1}\n"


@pytest.mark.parametrize("depth", [7, 9])
def test_a_yaml_bomb_is_refused_at_once_with_a_short_line(tmp_path, depth):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb(depth))
    start = time.perf_counter()
    line = one_line(invoke("run", "-c", bomb, "--print-config"))
    assert time.perf_counter() - start < 5 and len(line) < 300
    assert line.startswith(f"error: {bomb}: the YAML expands to ") and line.endswith(
        " values (aliases inside aliases), over the limit of 10,000; a stylize config or spec needs far fewer. "
        "Remove the aliases.")
    assert int(line.split("expands to ")[1].split()[0].replace(",", "")) > 9**depth


def test_a_message_quotes_a_bounded_value(tmp_path):
    nested = tmp_path / "nested.yaml"
    nested.write_text("steps: [&a [" + ", ".join(["x" * 50] * 40) + "], " + ", ".join(["*a"] * 40) + "]\n")
    line = one_line(invoke("run", "-c", nested, "--print-config"))
    assert line.startswith("error: steps: expected a whole number, got [[") and len(line) < 400


def test_a_config_file_is_checked_whole_even_where_a_flag_overrides_it(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("steps: many\n")
    assert one_line(invoke("run", "-c", config, "--steps", 2, "--print-config")) == \
        "error: steps: expected a whole number, got 'many'"
    assert one_line(invoke("run", "--set", "size=huge", "--size", 64, "--print-config")) == \
        "error: size: expected a whole number, got 'huge'"
    config.write_text("steps: 7\nprofile: true\n")  # a check between keys uses the merged values
    result = invoke("run", "-c", config, "--device", "dlp-sim", "--print-config")
    assert result.exit_code == 0 and "steps: 7" in result.stdout


def test_full_disk_at_a_save_every_image_is_a_warning_and_the_run_goes_on(pair, tmp_path, monkeypatch):
    real = images.save_image

    def full_for_steps(tensor, staged, final):
        if ".step" in str(final):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(tensor, staged, final)

    monkeypatch.setattr(images, "save_image", full_for_steps)
    out = tmp_path / "out.png"
    result = invoke("run", *pair, "-o", out, *TINY, "--save-every", 2, "--quiet")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "--save-every" in line]
    assert len(warnings) == 2 and "No space left on device" in warnings[0] and "the run goes on" in warnings[0]
    assert out.is_file() and not list(tmp_path.glob("out.step*")) and temporaries(tmp_path) == []


def test_a_checkpoint_from_another_schedule_is_refused(pair, tmp_path):
    out = tmp_path / "out.png"
    assert invoke("run", *pair, "-o", out, *TINY, "--checkpoint-every", 2, "--quiet").exit_code == 0
    ckpt = tmp_path / "out.ckpt"
    data = torch.load(ckpt, weights_only=True)
    torch.save({**data, "stage": 5}, ckpt)  # a stage this one-stage run does not have
    line = one_line(invoke("run", "--resume", ckpt))
    assert "is at stage 6, but this run has 1 stage(s)" in line
