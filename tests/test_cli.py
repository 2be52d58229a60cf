import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from stylize.cli import app
from stylize.config import build_config

runner = CliRunner()
TINY = ["--size", "32", "--steps", "6", "--device", "cpu", "--scales", "none"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def files_under(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def _commands(group=None, prefix=()):
    """Every command path of the app, read from the app itself (a new command cannot be forgotten here)."""
    import typer.main

    group = group or typer.main.get_command(app)
    yield list(prefix)
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("command", list(_commands()), ids=lambda c: " ".join(c) or "stylize")
def test_every_command_has_help_with_an_example(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and "stylize" in result.stdout


def test_run_help_shows_the_config_defaults():
    text = " ".join(invoke("run", "--help").stdout.replace("│", " ").split())  # undo rich's box and wrapping
    for shown in ("[default: 300]", "[default: auto]", "[default: noise]", "[default: 512 on CUDA, 128 otherwise]"):
        assert shown in text


def test_shared_options_keep_one_name_and_a_command_may_reword_one():
    """batch and video take run's config options (cli/options.py); video's --steps counts its later frames."""
    from stylize.video import VideoConfig

    def options(command):
        return " ".join(invoke(command, "--help").stdout.replace("│", " ").split())

    run_help, video_help = options("run"), options("video")
    for flag in ("--size", "--weights", "--region", "--max-memory", "--style-weight", "--set"):
        assert flag in run_help and flag in video_help and flag in options("batch")
    assert "Closure evaluations at the final size (above 768 px, scales auto spreads" in " ".join(run_help.split())
    assert f"Evaluations of each LATER frame (frame 1: --first-steps) [default: {VideoConfig.steps}]" in video_help


def test_run_writes_image_and_logs(pair, tmp_path):
    out = tmp_path / "res" / "out.png"
    result = invoke("run", *pair, "-o", out, *TINY)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert "UNTRAINED" in result.stderr  # the loud fallback warning
    with Image.open(out) as img:
        assert img.size == (40, 32)  # 60x48 content, shorter edge 32
    rows = list(csv.DictReader(open(tmp_path / "res" / "out.losses.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        assert float(r["total"]) == pytest.approx(float(r["style"]) + float(r["content"]), rel=1e-6)
    info = json.load(open(tmp_path / "res" / "out.run.json"))
    assert info["status"] == "completed" and info["steps_run"] == 6
    assert info["weights"]["kind"] == "untrained" and "UNTRAINED" in info["weights"]["warning"]
    assert info["config"]["size"] == 32 and info["image_size"] == [40, 32]
    for column in ("total", "style", "content"):
        assert float(rows[-1][column]) == info["final_losses"][column]  # repr() round-trips exactly
    assert info["config"]["device"] == "cpu" and info["config"]["content"] == str(pair[0])
    assert {"torch", "torchvision", "stylize", "python"} <= set(info["versions"])
    with Image.open(tmp_path / "res" / "out.loss.png") as plot:
        assert plot.format == "PNG"
    assert not [p for p in files_under(tmp_path / "res") if p.startswith(".")]  # no temp files left


def test_demo_pair_and_default_output(tmp_path):
    result = invoke("run", "--quiet", *TINY)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == os.path.join("outputs", "content__style.png")
    assert files_under(tmp_path / "outputs") == [
        "content__style.loss.png", "content__style.losses.csv", "content__style.png", "content__style.run.json"]
    assert "step" not in result.stderr  # --quiet: warnings only


def test_print_config_prints_the_resolved_yaml(tmp_path):
    result = invoke("run", "-c", "gatys", "--steps", "12", "--set", "init=content", "--print-config")
    assert result.exit_code == 0
    printed = yaml.safe_load(result.stdout)
    assert printed["steps"] == 12 and printed["init"] == "content" and printed["content_layers"] == {"conv4_2": 1.0}
    assert build_config(overrides=printed) == build_config("gatys", ["steps=12", "init=content"])
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_gatys_config_runs(pair, tmp_path):
    result = invoke("run", *pair, "-c", "configs/gatys.yaml", "-o", tmp_path / "g.png", *TINY, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert json.load(open(tmp_path / "g.run.json"))["config"]["content_layers"] == {"conv4_2": 1.0}


def _bad_inputs(tmp_path, pair):
    content, style = pair
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\x00\x01 definitely not a jpeg")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("steps: [1, 2\n")
    unknown_key = tmp_path / "unknown.yaml"
    unknown_key.write_text("stpes: 3\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights")
    Image.open(content).save(tmp_path / "in.loss.png")  # a content image named like a log file
    (tmp_path / "d" / "x.run.json").mkdir(parents=True)
    cases = {
        "missing content": ([tmp_path / "nope.jpg", style], "image not found"),
        "unreadable image": ([content, garbage], "not an image Pillow can read"),
        "bad yaml": ([content, style, "-c", bad_yaml], "invalid YAML at line"),
        "missing config": ([content, style, "-c", tmp_path / "none.yaml"], "config file not found"),
        "unknown key in yaml": ([content, style, "-c", unknown_key], "Did you mean 'steps'?"),
        "unknown --set key": ([content, style, "--set", "sise=3"], "Did you mean 'size'?"),
        "zero steps": ([content, style, "--steps", "0"], "steps: 0 is out of range"),
        "negative weight": ([content, style, "--style-weight", "-5"], "style_weight: -5.0 is out of range"),
        "tiny size": ([content, style, "--size", "4"], "size: 4 is out of range"),
        "size too small for layers": ([content, style, "--size", "20", "--set", "style_layers=[pool5]"], "must be at least 32 px"),
        "absurd size": ([content, style, "--size", "60000"], "largest size that fits is about"),
        "not an int": ([content, style, "--steps", "many"], "Invalid value for '--steps'"),
        "unknown option": ([content, style, "--colour", "red"], "No such option"),
        "unknown device": ([content, style, "--device", "tpu"], "unknown device 'tpu'"),
        "unknown dlp spec": ([content, style, "--device", "dlp-sim", "--dlp-spec", "mlu720"], "Did you mean 'mlu270'?"),
        "bad dlp spec yaml": ([content, style, "--device", "dlp-sim", "--dlp-spec", bad_yaml], "invalid YAML at line"),
        "dlp spec missing keys": ([content, style, "--device", "dlp-sim", "--dlp-spec", unknown_key], "unknown key 'stpes'"),
        "unknown dlp mode": ([content, style, "--device", "dlp-sim", "--dlp-mode", "int4"], "dlp_mode: unknown mode 'int4'"),
        "profile without dlp": ([content, style, "--device", "cpu", "--profile"], "needs --device dlp-sim"),
        "output is the content": ([content, style, "-o", content], "refusing to overwrite it"),
        "output under a file": ([content, style, "-o", content / "x.png"], "is not a writable folder"),
        "bad extension": ([content, style, "-o", tmp_path / "out" / "x.gif"], "unsupported extension"),
        "missing weights": ([content, style, "--weights", tmp_path / "w.pth"], "is not one of auto, imagenet, untrained, nor an existing file"),
        "weights typo": ([content, style, "--weights", "untrainde"], "Did you mean 'untrained'?"),
        "bad weights": ([content, style, "--weights", notes], "not a PyTorch state_dict"),
        "missing init": ([content, style, "--init", tmp_path / "init.png"], "is not one of noise, content, gray, nor an existing file"),
        "log overwrites input": ([tmp_path / "in.loss.png", style, "-o", tmp_path / "in.png"], "refusing to overwrite"),
        "log path is a folder": ([content, style, "-o", tmp_path / "d" / "x.png"], "a folder of that name exists"),
        "huge number": ([content, style, "--set", "seed=" + "9" * 400], "seed: "),
        "dict in layer list": ([content, style, "--set", "style_layers=[{conv_1: 2}]"], "expected a list of layer names"),
        "same layer twice": ([content, style, "--set", "style_layers={conv_1: 1, conv1_1: 5}"], "are the same layer"),
        "imagenet offline": ([content, style, "--weights", "imagenet"], "STYLIZE_OFFLINE is set"),
    }
    if not torch.cuda.is_available():
        cases["cuda unavailable"] = ([content, style, "--device", "cuda"], "device 'cuda' is not available")
    return cases


def test_bad_inputs_one_line_exit_2_nothing_written(tmp_path, pair):
    for name, (args, message) in _bad_inputs(tmp_path, pair).items():
        out = tmp_path / "out"
        result = invoke("run", "--steps", "2", *(["-o", out / "x.png"] if "-o" not in args else []), *args)
        assert result.exit_code == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, result.stderr)
        assert message in lines[0], (name, lines[0])
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert not out.exists() or files_under(out) == [], name
        assert files_under(tmp_path / "d") == [] and (tmp_path / "d" / "x.run.json").is_dir()


def test_weights_info_and_bad_import(tmp_path):
    result = invoke("weights", "info")
    assert result.exit_code == 0 and "cached: False" in result.stdout and "auto_would_use: untrained" in result.stdout
    fake = tmp_path / "fake.pth"
    fake.write_bytes(b"x")
    result = invoke("weights", "import", fake)
    assert result.exit_code == 2 and "expected dcbb9e9d" in result.stderr
    assert invoke("weights", "import", tmp_path / "none.pth").exit_code == 2


def test_bare_commands_print_help_and_exit_0():
    for args in ([], ["weights"]):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage" in result.stdout and "error" not in result.stderr


def test_outputs_get_normal_file_permissions(pair, tmp_path):
    old = os.umask(0o022)
    try:
        assert invoke("run", *pair, "-o", tmp_path / "p.png", *TINY, "-q").exit_code == 0
    finally:
        os.umask(old)
    for name in ("p.png", "p.losses.csv", "p.run.json", "p.loss.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("stylize ")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_keeps_what_was_computed(pair, tmp_path, sig):
    """A real SIGINT (or SIGTERM) to a real `stylize run`: exit 130, the image so far and the logs are written."""
    out = tmp_path / "int.png"
    env = {**os.environ, "STYLIZE_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stylize", "run", *map(str, pair), "-o", str(out), "--size", "32",
                             "--steps", "100000", "--device", "cpu", "--set", "log_every=1", "--set", "plateau_tol=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_sigint_default)
    seen = ""
    deadline = time.monotonic() + 120
    while "step 3:" not in seen and time.monotonic() < deadline:  # wait until it is optimizing
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + stderr
    assert stdout.strip() == str(out)
    assert "interrupted at step" in stderr and "Traceback" not in stderr
    info = json.load(open(tmp_path / "int.run.json"))
    assert info["status"] == "interrupted" and 3 <= info["steps_run"] < 100000
    rows = list(csv.DictReader(open(tmp_path / "int.losses.csv")))
    assert len(rows) == info["steps_run"]
    with Image.open(out) as img:
        assert img.size == (40, 32)


def test_ctrl_c_during_setup_writes_nothing(pair, tmp_path, monkeypatch):
    import stylize.transfer

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(stylize.transfer, "load_features", interrupted)  # after the images were read
    result = invoke("run", *pair, "-o", tmp_path / "o" / "x.png", *TINY)
    assert result.exit_code == 130 and "nothing was written" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_ctrl_c_while_writing_is_ignored(pair, tmp_path, monkeypatch):
    import stylize.logs

    plot = stylize.logs.plot_losses

    def plot_with_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT to this process, mid-write
        return plot(*args, **kwargs)

    monkeypatch.setattr(stylize.logs, "plot_losses", plot_with_ctrl_c)
    result = invoke("run", *pair, "-o", tmp_path / "w.png", *TINY, "-q")
    assert result.exit_code == 0, result.stderr
    assert not [p for p in files_under(tmp_path) if p.startswith(".")]  # no staged file left behind
    for name in ("w.png", "w.losses.csv", "w.run.json", "w.loss.png"):
        assert (tmp_path / name).is_file(), name
    assert json.load(open(tmp_path / "w.run.json"))["status"] == "completed"


def test_atomic_files_write_nothing_when_one_target_is_a_folder(tmp_path):
    from stylize.errors import StylizeError
    from stylize.outputs import AtomicFiles

    (tmp_path / "x.json").mkdir()
    with pytest.raises(StylizeError, match="a folder of that name exists"):
        with AtomicFiles() as files:
            files.stage(tmp_path / "a.txt").write_text("a")
            files.stage(tmp_path / "x.json").write_text("b")
    assert files_under(tmp_path) == [] and (tmp_path / "x.json").is_dir()


def test_command_defaults_come_from_the_typed_configs():
    """One source of defaults per command: the CLI's equal the typed config's, which the Python API uses."""
    import dataclasses

    import typer.main

    from stylize.bench import BenchConfig
    from stylize.compress.config import PruneConfig, QuantizeConfig

    commands = typer.main.get_command(app).commands
    named = {"weights_": "weights", "set_": "sets", "device": "devices", "size": "sizes"}
    for command, typed in (("prune", PruneConfig(output="")), ("quantize", QuantizeConfig(output="")),
                           ("bench", BenchConfig())):
        fields = {f.name: getattr(typed, f.name) for f in dataclasses.fields(typed)}
        for param in commands[command].params:
            key = named.get(param.name, param.name)
            if key not in fields or param.name in ("set_", "output") or param.default is None:
                continue
            want = fields[key][0] if key == "devices" else fields[key]
            assert param.default == want, (command, param.name, param.default, want)
    # run: every option that is a Config field defaults to None ("not given"), so Config's default applies
    for param in commands["run"].params:
        if param.name in ("quiet", "print_config", "ctx"):
            continue
        assert param.default in (None, [], ()), (param.name, param.default)


def _sigint_default() -> None:
    """In the child: SIGINT as a terminal gives it. A shell starting the suite in the background (nohup, `&`)
    passes SIGINT on ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
