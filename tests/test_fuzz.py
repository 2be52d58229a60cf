"""Every artefact format stylize reads, corrupted every way we could think of, through the CLI: weights (and
unstructured-pruned files, which are weights), channel-pruned and int8 artefacts, checkpoints, dlp specs.
Each case must end in one line on stderr and exit 2, and no pickle may run code."""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from stylize import features
from stylize.cli import app
from stylize.compress import prune, quantize

runner = CliRunner()
# A small style model (conv_1, conv_2): artefacts up to features index 2 are enough.
LAYERS = ["--set", "style_layers=[conv_1,conv_2]", "--set", "content_layers=[conv_2]", "--set", "recipe=seed"]
TINY = ["--size", "32", "--steps", "2", "--device", "cpu", "--scales", "none", "--quiet", *LAYERS]
PWNED = "PWNED"


class _Exploit:
    """Pickling this makes a file whose unpickling would run a shell command."""

    def __reduce__(self):
        return (os.system, (f"touch {PWNED}",))


def _save(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _replace(state: dict, key: str, value) -> dict:
    return {**state, key: value}


def _drop(state: dict, key: str) -> dict:
    return {k: v for k, v in state.items() if k != key}


def _bytes_cases(valid: bytes) -> dict[str, bytes]:
    """Corruptions every file format shares."""
    return {
        "empty": b"",
        "truncated": valid[: len(valid) // 2],
        "garbage": bytes(range(256)) * 8,
        "code-executing pickle (torch.save)": _save({"x": _Exploit()}),
        "code-executing plain pickle": pickle.dumps(_Exploit()),
        "plain pickle of a dict": pickle.dumps({"features.0.weight": [1.0, 2.0]}, protocol=4),
        "a list, not a mapping": _save([torch.zeros(1)]),
        "a bare tensor": _save(torch.zeros(3)),
    }


def _weights() -> dict[str, torch.Tensor]:
    net = features.init_untrained(features.vgg19_features(2))
    return {f"features.{k}": v for k, v in net.state_dict().items()}


def _weights_cases() -> dict[str, bytes]:
    w = _weights()
    cases = _bytes_cases(_save(w))
    cases.update({
        "int64 weights": _save(_replace(w, "features.0.weight", w["features.0.weight"].long())),
        "bool weights": _save(_replace(w, "features.0.weight", w["features.0.weight"] > 0)),
        "complex weights": _save(_replace(w, "features.0.weight", w["features.0.weight"].to(torch.complex64))),
        "wrong shape": _save(_replace(w, "features.0.weight", torch.zeros(64, 3, 5, 5))),
        "NaN": _save(_replace(w, "features.2.weight", w["features.2.weight"].index_fill(0, torch.tensor([3]), float("nan")))),
        "inf": _save(_replace(w, "features.0.bias", torch.full((64,), float("inf")))),
        "missing key": _save(_drop(w, "features.2.bias")),
        "extra key on a ReLU": _save(_replace(w, "features.1.weight", torch.zeros(64))),
        "extra key past VGG19": _save(_replace(w, "features.99.weight", torch.zeros(1))),
        "a non-tensor value": _save(_replace(w, "features.0.weight", [[1.0]])),
    })
    return cases


def _structured() -> dict:
    net = prune.prune_structured(features.init_untrained(features.vgg19_features(2)), [0, 2], 0.25)
    return prune.state_dict(net, structured=True)


def _structured_cases() -> dict[str, bytes]:
    s = _structured()
    cases = _bytes_cases(_save(s))
    cases.update({
        "36 TB of channels": _save(_replace(s, "channels", [10**6] * 16)),
        "more channels than VGG19": _save(_replace(s, "channels", [65, 48])),
        "17 convs": _save(_replace(s, "channels", [8] * 17)),
        "channels not whole numbers": _save(_replace(s, "channels", ["48", 48])),
        "channels bool": _save(_replace(s, "channels", [True, True])),
        "channels negative": _save(_replace(s, "channels", [-1, 48])),
        "no channels": _save(_drop(s, "channels")),
        "weights not matching channels": _save(_replace(s, "channels", [40, 48])),
        "NaN weight": _save(_replace(s, "features.0.weight", torch.full_like(s["features.0.weight"], float("nan")))),
        "extra key on a ReLU": _save(_replace(s, "features.1.weight", torch.zeros(48))),
        "unknown format": _save(_replace(s, "stylize_format", "pruned-structured/9")),
        "format not a string": _save(_replace(s, "stylize_format", 7)),
    })
    return cases


def _int8() -> dict:
    g = torch.Generator().manual_seed(0)
    q = {}
    for index, shape in ((0, (64, 3, 3, 3)), (2, (64, 64, 3, 3))):
        q[index] = {"weight_int8": torch.randint(-127, 128, shape, generator=g, dtype=torch.int8),
                    "weight_scale": torch.rand(64, generator=g) * 1e-3 + 1e-4, "bias": torch.zeros(64),
                    "input_scale": torch.tensor(0.02), "input_zero_point": torch.tensor(10)}
    return quantize.state_dict(q)


def _int8_cases() -> dict[str, bytes]:
    s = _int8()
    w = "features.2."
    cases = _bytes_cases(_save(s))
    cases.update({
        "weight_scale wrong shape": _save(_replace(s, w + "weight_scale", torch.ones(3))),
        "bias wrong shape": _save(_replace(s, w + "bias", torch.zeros(64, 1))),
        "weights float": _save(_replace(s, w + "weight_int8", s[w + "weight_int8"].float())),
        "weights wrong shape": _save(_replace(s, w + "weight_int8", torch.zeros(64, 3, 3, 3, dtype=torch.int8))),
        "huge weights": _save(_replace(s, w + "weight_int8", torch.zeros(10**4, 64, 3, 3, dtype=torch.int8))),
        "weight_scale NaN": _save(_replace(s, w + "weight_scale", torch.full((64,), float("nan")))),
        "weight_scale zero": _save(_replace(s, w + "weight_scale", torch.zeros(64))),
        "bias inf": _save(_replace(s, w + "bias", torch.full((64,), float("inf")))),
        "input_scale inf": _save(_replace(s, w + "input_scale", torch.tensor(float("inf")))),
        "input_scale a vector": _save(_replace(s, w + "input_scale", torch.ones(4))),
        "zero point 300": _save(_replace(s, w + "input_zero_point", torch.tensor(300))),
        "zero point float": _save(_replace(s, w + "input_zero_point", torch.tensor(1.5))),
        "missing field": _save(_drop(s, w + "bias")),
        "extra field": _save(_replace(s, w + "extra", torch.zeros(1))),
        "a ReLU as conv": _save({**s, **{k.replace("features.2.", "features.1."): v for k, v in s.items() if k.startswith(w)}}),
        "unexpected key": _save(_replace(s, "classifier.0.weight", torch.zeros(1))),
        "a non-tensor field": _save(_replace(s, w + "bias", [0.0] * 64)),
        "missing conv": _save({k: v for k, v in s.items() if not k.startswith(w)}),
    })
    return cases


def _ids(cases: Callable[[], dict[str, bytes]]) -> list[str]:
    return list(cases())


def _expect_one_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and "Warning" not in result.output
    return lines[0]


@pytest.fixture
def write(tmp_path):
    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path
    yield write
    assert not (tmp_path / PWNED).exists(), "a pickle ran code"


WEIGHTS, STRUCTURED, INT8 = _weights_cases(), _structured_cases(), _int8_cases()


@pytest.mark.parametrize("kind,case", [*(("weights", c) for c in WEIGHTS), *(("pruned-structured", c) for c in STRUCTURED),
                                       *(("int8", c) for c in INT8)])
def test_a_corrupt_weights_file_is_one_line(pair, write, kind, case):
    data = {"weights": WEIGHTS, "pruned-structured": STRUCTURED, "int8": INT8}[kind][case]
    path = write("w.pt", data)
    _expect_one_line(runner.invoke(app, ["run", *map(str, pair), "--weights", str(path), *TINY, "-o", "o.png"]))
    assert not Path("o.png").exists()


@pytest.mark.parametrize("kind", ["weights", "pruned-structured", "int8"])
def test_the_uncorrupted_artefacts_run(pair, write, kind):
    data = {"weights": _save(_weights()), "pruned-structured": _save(_structured()), "int8": _save(_int8())}[kind]
    path = write("w.pt", data)
    result = runner.invoke(app, ["run", *map(str, pair), "--weights", str(path), *TINY, "-o", "o.png"])
    assert result.exit_code == 0, result.output


# ---- checkpoints -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    """A real checkpoint of a tiny run (its inputs beside it), and the run's arguments."""
    from conftest import _pattern

    folder = tmp_path_factory.mktemp("ckpt")
    content, style = folder / "c.png", folder / "s.png"
    _pattern(40, 32, 1).save(content)
    _pattern(36, 36, 2).save(style)
    out = folder / "o.png"
    result = runner.invoke(app, ["run", str(content), str(style), "-o", str(out), "--weights", "untrained",
                                 "--checkpoint-every", "1", *TINY[:-len(LAYERS)], *LAYERS, "--steps", "25",
                                 "--set", "lbfgs_max_iter=5"])
    assert result.exit_code == 0, result.output
    return torch.load(folder / "o.ckpt", weights_only=True), folder


def _loop(ckpt: dict, **changes) -> dict:
    return {**ckpt, "loop": {**ckpt["loop"], **changes}}


def _checkpoint_cases(ckpt: dict) -> dict[str, bytes]:
    image = ckpt["loop"]["image"]
    optimizer = ckpt["loop"]["optimizer"]
    assert optimizer, "the fixture's run took an optimizer step"
    bad_state = {**optimizer, "state": {0: {**optimizer["state"][0], "d": torch.zeros(5)}}}
    cases = _bytes_cases(_save(ckpt))
    cases.update({
        "wrong format": _save(_replace(ckpt, "format", "stylize-checkpoint/0")),
        "missing key": _save(_drop(ckpt, "earlier")),
        "extra key": _save(_replace(ckpt, "extra", 1)),
        "stage not a number": _save(_replace(ckpt, "stage", "1")),
        "stage huge": _save(_replace(ckpt, "stage", 10**9)),
        "inputs not strings": _save(_replace(ckpt, "inputs", {"a": 1})),
        "config not a mapping": _save(_replace(ckpt, "config", [1, 2])),
        "config unknown key": _save(_replace(ckpt, "config", {**ckpt["config"], "stepz": 3})),
        "config bad value": _save(_replace(ckpt, "config", {**ckpt["config"], "steps": "many"})),
        "image NaN": _save(_loop(ckpt, image=torch.full_like(image, float("nan")))),
        "image 4 channels": _save(_loop(ckpt, image=torch.zeros(1, 4, *image.shape[-2:]))),
        "image int": _save(_loop(ckpt, image=image.long())),
        "image a list": _save(_loop(ckpt, image=image.tolist())),
        "best image wrong shape": _save(_loop(ckpt, best_image=torch.zeros(1, 3, 2, 2))),
        "optimizer tensor wrong size": _save(_loop(ckpt, optimizer=bad_state)),
        "optimizer not a state_dict": _save(_loop(ckpt, optimizer={"state": 1})),
        "optimizer two groups": _save(_loop(ckpt, optimizer={**optimizer, "param_groups": optimizer["param_groups"] * 2})),
        "history records wrong": _save(_loop(ckpt, history=[{"step": "x"}])),
        "loop keys missing": _save(_replace(ckpt, "loop", {"image": image})),
        "restarts negative": _save(_loop(ckpt, restarts=-1)),
        "events not strings": _save(_loop(ckpt, events=[1])),
    })
    return cases


CHECKPOINT_CASES = ["empty", "truncated", "garbage", "code-executing pickle (torch.save)", "code-executing plain pickle",
                    "plain pickle of a dict", "a list, not a mapping", "a bare tensor", "wrong format", "missing key",
                    "extra key", "stage not a number", "stage huge", "inputs not strings", "config not a mapping",
                    "config unknown key", "config bad value", "image NaN", "image 4 channels", "image int",
                    "image a list", "best image wrong shape", "optimizer tensor wrong size", "optimizer not a state_dict",
                    "optimizer two groups", "history records wrong", "loop keys missing", "restarts negative",
                    "events not strings"]


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_a_corrupt_checkpoint_is_one_line(saved_checkpoint, write, case):
    ckpt, _ = saved_checkpoint
    cases = _checkpoint_cases(ckpt)
    assert set(cases) == set(CHECKPOINT_CASES)
    path = write("o.ckpt", cases[case])
    _expect_one_line(runner.invoke(app, ["run", "--resume", str(path)]))


def test_the_uncorrupted_checkpoint_resumes(saved_checkpoint, tmp_path):
    ckpt, folder = saved_checkpoint
    path = tmp_path / "copy.ckpt"
    path.write_bytes(_save(ckpt))
    result = runner.invoke(app, ["run", "--resume", str(path), "--steps", "25"])
    assert result.exit_code == 0, result.output


# ---- dlp specs -------------------------------------------------------------------------------------------------

SPEC = """name: fuzz
cores: 4
clock_ghz: 1.0
nram_kb: 512
wram_kb: 1024
dram_gbps: 100
dma_setup_ns: 500
mac_per_cycle: {fp32: 256, fp16: 1024, int8: 2048}
vector_per_cycle: {fp32: 64, fp16: 128, int8: 256}
"""

SPEC_CASES = {
    "empty": "",
    "truncated": SPEC[: len(SPEC) // 2],
    "invalid YAML": "name: [unclosed\n",
    "binary": "\x00\x01\x02",
    "a list": "- 1\n- 2\n",
    "missing key": SPEC.replace("cores: 4\n", ""),
    "extra key": SPEC + "turbo: true\n",
    "NaN": SPEC.replace("clock_ghz: 1.0", "clock_ghz: .nan"),
    "inf": SPEC.replace("dram_gbps: 100", "dram_gbps: .inf"),
    "negative": SPEC.replace("cores: 4", "cores: -4"),
    "wrong type": SPEC.replace("cores: 4", "cores: many"),
    "a bool": SPEC.replace("cores: 4", "cores: true"),
    "rates missing a mode": SPEC.replace(", int8: 2048}", "}"),
    "rates floats": SPEC.replace("fp32: 256,", "fp32: 25.6,"),
    "name a list": SPEC.replace("name: fuzz", "name: [a, b]"),
    "tiny buffers": SPEC.replace("nram_kb: 512", "nram_kb: 1"),
    "python tag": SPEC + f"x: !!python/object/apply:os.system ['touch {PWNED}']\n",
    "nested 5000 deep": "x: " + "[" * 5000 + "]" * 5000 + "\n" + SPEC,
    "alias bomb": "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"b{i}: &b{i} [{', '.join([f'*b{i - 1}' if i else '*a'] * 9)}]\n" for i in range(6)) + SPEC,
}


@pytest.mark.parametrize("case", SPEC_CASES)
def test_a_corrupt_dlp_spec_is_one_line(write, case):
    path = write("spec.yaml", SPEC_CASES[case].encode("utf-8"))
    _expect_one_line(runner.invoke(app, ["run", "--device", "dlp-sim", "--dlp-spec", str(path), "--print-config"]))


def test_the_uncorrupted_dlp_spec_loads(write):
    path = write("spec.yaml", SPEC.encode())
    result = runner.invoke(app, ["run", "--device", "dlp-sim", "--dlp-spec", str(path), "--print-config"])
    assert result.exit_code == 0, result.output
