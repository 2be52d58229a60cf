"""stylize.compress: pruning and int8 quantization, checked against references, and their CLI commands."""

from __future__ import annotations

import copy
import io
import json
import os
import platform
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as tprune
from torch import nn
from typer.testing import CliRunner

from stylize import cpu, features, weights
from stylize.cli import app
from stylize.compress import prune, quantize
from stylize.errors import StylizeError

runner = CliRunner()
CUT = features.layer("conv_5").index  # the seed's layers: conv_1..conv_5
INT8_REL_ERROR = 0.05  # int8 features at conv_4 vs fp32 on the demo image: 2.4 % (8 bits), 2.8 % (7 bits) at 64 px


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def untrained(upto: int = CUT) -> nn.Sequential:
    return features.init_untrained(features.vgg19_features(upto)).eval()


@pytest.fixture(scope="module")
def calibrated():
    """A small net (up to conv_4) and its int8 qparams, calibrated on the demo pair at 48 px."""
    net = untrained(features.layer("conv_4").index)
    return net, quantize.calibrate(net, quantize.calibration_images(None, size=48))


def probe_image(size: int = 48) -> torch.Tensor:
    return features.Normalization()(quantize.calibration_images(None, size)[0])


# ---- pruning ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["l1-unstructured", "random-unstructured"])
def test_global_sparsity_equals_amount_as_the_seeds_global_unstructured(method):
    net = untrained()
    reference = copy.deepcopy(net)
    targets = prune.conv_indices(net)
    prune.prune_unstructured(net, targets, 0.3, method, seed=0)
    total = sum(net[i].weight.numel() for i in targets)
    zeros = sum(int((net[i].weight == 0).sum()) for i in targets)
    assert zeros == round(0.3 * total)  # the global count, as prune.global_unstructured computes it
    assert all(not tprune.is_pruned(net[i]) for i in targets)  # prune.remove made it permanent
    if method == "l1-unstructured":  # the very mask the seed's call gives
        pairs = [(reference[i], "weight") for i in targets]
        tprune.global_unstructured(pairs, pruning_method=tprune.L1Unstructured, amount=0.3)
        for i in targets:
            assert torch.equal(net[i].weight, reference[i].weight)


def test_unstructured_file_loads_as_pruned(tmp_path):
    net = untrained()
    prune.prune_unstructured(net, prune.conv_indices(net), 0.3)
    path = tmp_path / "pruned.pt"
    torch.save(prune.state_dict(net, structured=False), path)
    loaded, info = weights.load_features(str(path), CUT)
    assert info.kind == "pruned" and "30.0% of conv weights zero" in info.source
    expected = net.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


def test_structured_pruning_drops_channels_consistently_and_runs(tmp_path):
    net = untrained()
    targets = prune.conv_indices(net)
    small = prune.prune_structured(net, targets, 0.25)
    in_ch = 3
    for i in targets:
        c = net[i].out_channels
        assert small[i].weight.shape == (c - round(0.25 * c), in_ch, 3, 3)
        in_ch = small[i].out_channels
    # The pruned net is the original with those channels dropped: at the first pruned conv the kept channels'
    # activations are the original's, bit for bit; and the kept filters are the ones with the largest L1 norm.
    x = probe_image()
    keep = prune.channels_to_keep(net[0].weight, 0.25)
    l1 = net[0].weight.abs().sum((1, 2, 3))
    assert l1[keep].min() >= l1[[i for i in range(64) if i not in keep.tolist()]].max()
    with torch.no_grad():
        assert torch.equal(small[0](x), net[0](x)[:, keep])
        assert small(x).shape[1] == 192
    path = tmp_path / "small.pt"
    torch.save(prune.state_dict(small, structured=True), path)
    loaded, info = weights.load_features(str(path), CUT)
    assert info.kind == "pruned-structured" and "[48, 48, 96, 96, 192]" in info.source
    with torch.no_grad():
        assert torch.equal(loaded(x), small(x))
    model, cl, sl = features.build_style_model(loaded, x, x, {"conv_4": 1.0}, {"conv_1": 1.0, "conv_5": 1.0})
    with torch.no_grad():
        model(x)
    assert float(cl[0].loss) == 0.0 and float(sl[1].loss) == 0.0
    with pytest.raises(StylizeError, match="holds 5 convs, this run's layers need 10"):
        weights.load_features(str(path), features.layer("relu4_2").index)


# ---- int8 ------------------------------------------------------------------------------------------------------


def test_int8_artefact_round_trips_bitwise(tmp_path, calibrated):
    net, q = calibrated
    cut = max(q)
    path = tmp_path / "int8.pt"
    torch.save(quantize.state_dict(q), path)
    back = quantize.qparams(torch.load(path, weights_only=True))
    assert back.keys() == q.keys()
    for i in q:
        for key in q[i]:
            assert torch.equal(back[i][key], q[i][key]) and back[i][key].dtype == q[i][key].dtype
    x = probe_image()
    with torch.no_grad():
        assert torch.equal(quantize.int8_features(back, cut)(x), quantize.int8_features(q, cut)(x))
    loaded, info = weights.load_features(str(path), cut)
    assert info.kind == "int8" and info.qparams is not None and "qparams" not in info.as_dict()
    for i in q:
        assert torch.equal(loaded[i].weight, quantize.dequantize(q[i]))


def test_int8_inference_matches_fp32_within_bound(calibrated):
    net, q = calibrated
    x = probe_image(64)
    with torch.no_grad():
        error = quantize.relative_error(quantize.int8_features(q, max(q))(x), net(x))
    assert error < INT8_REL_ERROR


def _pairs_model(qx: torch.Tensor, zp: int, wq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A plain reimplementation of a 3x3 int8 conv's accumulation (float64, exact for these sizes): exact int32,
    and ``vpmaddubsw``'s (neighbouring input channels' u8 x s8 products added in int16, saturating)."""
    _, c, h, w = qx.shape
    x = F.pad(qx.double(), (1, 1, 1, 1), value=zp)  # the border is float 0: the zero point's code
    cols = F.unfold(x, 3)[0]  # (C*9, L), channel-major
    wcols = wq.double().reshape(len(wq), c * 9)
    exact = wcols @ cols
    pairs = torch.einsum("pjtl,opjt->optl", cols.reshape(c // 2, 2, 9, -1), wcols.reshape(-1, c // 2, 2, 9))
    saturated = pairs.clamp(-(2**15), 2**15 - 1).sum((1, 2))
    return exact.reshape(1, -1, h, w), saturated.reshape(1, -1, h, w)


def _dequantized_output(conv: quantize.Int8Conv, acc: torch.Tensor, wq: torch.Tensor) -> torch.Tensor:
    zp_term = conv.x_zp * wq.double().sum((1, 2, 3)).view(1, -1, 1, 1)  # the zero point's share, as oneDNN's
    return ((acc - zp_term) * conv.x_scale * conv.w_scale.double().view(1, -1, 1, 1)
            + conv.bias.double().view(1, -1, 1, 1)).float()


def test_int8_kernel_is_the_reference_arithmetic(calibrated):
    """On every CPU: oneDNN's int8 conv at the activation width this CPU uses (8 bits, 7 without VNNI) = the
    dequantized-operand conv in fp32 (int32 accumulation is exact there)."""
    _, q = calibrated
    conv = quantize.Int8Conv(q[2])
    assert conv.bits == (7 if cpu.int8_pairs_saturate() else 8) and conv.qmax == 2**conv.bits - 1
    x = torch.rand(1, 64, 20, 24) * 8  # over the calibrated range: codes up to qmax, the saturating case
    qx = quantize.quantize_activation(x, conv.x_scale, conv.x_zp, conv.qmax)
    assert int(qx.max()) == conv.qmax  # the range is used to its end
    reference = F.conv2d((qx.float() - conv.x_zp) * conv.x_scale, quantize.dequantize(q[2]), q[2]["bias"], padding=1)
    with torch.no_grad():
        assert torch.allclose(conv(x), reference, rtol=1e-4, atol=1e-5)


def test_int8_kernel_at_8_bits_is_exact_with_vnni_and_saturates_pairs_without(calibrated):
    """Why 7 bits without VNNI: at 8 bits the kernel's output is the int16-pair model's there (and not the
    exact sum), the exact sum's where the CPU has VNNI; which one, the probe ``cpu.int8_pairs_saturate`` says."""
    _, q = calibrated
    if not quantize.int8_kernel_available():
        pytest.skip("no oneDNN int8 kernel in this torch build")
    conv = quantize.Int8Conv(q[2], bits=8)
    x = torch.rand(1, 64, 12, 16) * 8  # activations over the calibrated range: many codes at 255
    qx = quantize.quantize_activation(x, conv.x_scale, conv.x_zp)
    exact, saturated = (_dequantized_output(conv, acc, q[2]["weight_int8"])
                        for acc in _pairs_model(qx, conv.x_zp, q[2]["weight_int8"]))
    assert not torch.allclose(exact, saturated, rtol=1e-4, atol=1e-3)  # this input tells the two apart
    expected, other = (saturated, exact) if cpu.int8_pairs_saturate() else (exact, saturated)
    with torch.no_grad():
        got = conv(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-3) and not torch.allclose(got, other, rtol=1e-4, atol=1e-3)


def test_int8_report_and_run_json_name_the_isa_and_the_width(calibrated, pair, tmp_path):
    from stylize import stylize
    from stylize.compress import report

    net, q = calibrated
    r = report.int8_inference(net, q, max(q), "max", quantize.calibration_images(None, 48)[0], repeat=1)
    assert r["activation_bits"] == quantize.activation_bits() and r["cpu"] == cpu.report()
    assert r["relative_error"] < INT8_REL_ERROR and f"uint{r['activation_bits']} x int8" in r["kernel"]
    stylize(*pair, tmp_path / "o.png", size=32, steps=2, device="cpu", scales="none", weights="untrained")
    assert json.loads((tmp_path / "o.run.json").read_text())["versions"]["cpu"] == json.loads(json.dumps(cpu.report()))


def test_reduced_range_keeps_the_float_range():
    scale, zp, qmax = quantize.reduce_range(0.02, 113, 7)
    assert qmax == 127 and zp == round(113 * 127 / 255) and scale == pytest.approx(0.02 * 255 / 127)
    assert quantize.reduce_range(0.02, 113, 8) == (0.02, 113, 255)
    low, high = (0 - zp) * scale, (qmax - zp) * scale  # 7-bit ends vs 8-bit ends: within one 7-bit step
    assert abs(low - (0 - 113) * 0.02) <= scale and abs(high - (255 - 113) * 0.02) <= scale


def test_onednn_isa_honours_the_emulation_variable():
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2":
        assert cpu.onednn_isa() == "Intel AVX2" and cpu.int8_pairs_saturate()
    report = cpu.report()
    assert report["aten_capability"] == torch.backends.cpu.get_cpu_capability()
    assert report["onednn_isa"] not in ("", "unknown")


@pytest.mark.slow
def test_int8_tests_pass_on_an_avx2_cpu_without_vnni():
    """Every machine tests both int8 paths: this file's int8 tests again, with oneDNN capped at AVX2 (no VNNI)."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not quantize.int8_kernel_available():
        pytest.skip("ONEDNN_MAX_CPU_ISA=AVX2 emulates an x86 CPU; this one is not, or has no oneDNN int8 kernel")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                           "-k", "int8 or onednn or reduced_range", "-m", "not slow"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout and "skipped" not in done.stdout


def test_int8_file_is_a_quarter_of_fp32(calibrated):
    net, q = calibrated
    sizes = []
    for state in ({f"features.{k}": v for k, v in net.state_dict().items()}, quantize.state_dict(q)):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        sizes.append(buffer.getbuffer().nbytes)
    assert sizes[1] / sizes[0] <= 0.3


def test_dlp_int8_uses_the_calibrated_scales(calibrated):
    from stylize import dlp
    from stylize.dlp import numerics, runtime
    from stylize.dlp.kernels import conv

    _, q = calibrated
    p = q[2]
    weight = quantize.dequantize(p)
    x = torch.rand(1, 64, 12, 12)
    expected = F.conv2d(numerics.affine_uint8(x, float(p["input_scale"]), int(p["input_zero_point"])),
                        numerics.per_channel_int8(weight, p["weight_scale"]), p["bias"], padding=1)
    with dlp.session("textbook", "int8"):
        dynamic = conv.conv2d(x, weight, p["bias"], (1, 1))
        assert runtime.calibrate([(weight, p)]) == 1
        static = conv.conv2d(x, weight, p["bias"], (1, 1))
    # atol 1e-5: fp32 rounding of the tile order (the mapping chosen depends on the spec's state), ~1e-6 seen
    assert torch.allclose(static, expected, rtol=1e-5, atol=1e-5), float((static - expected).abs().max())
    assert not torch.allclose(dynamic, expected, rtol=1e-5, atol=1e-5)  # it did change something


# ---- the commands ------------------------------------------------------------------------------------------------


def test_prune_and_quantize_cli_write_scored_artefacts_that_run_loads(tmp_path):
    probe = ["--probe-size", 32, "--probe-steps", 3]
    result = invoke("prune", "--weights", "untrained", "--method", "l1-structured", "--amount", 0.25, *probe,
                    "-o", tmp_path / "small.pt")
    assert result.exit_code == 0, result.output
    assert "(64, 3, 3, 3)      (48, 3, 3, 3)" in result.stdout and "quality retained" in result.stdout
    report = json.loads((tmp_path / "small.report.json").read_text())
    assert report["kind"] == "pruned-structured" and report["totals"]["channel_fraction_removed"] == 0.25
    assert report["score"]["quality_retained"] > 0 and report["score"]["eval_time"]["speedup"] > 0

    result = invoke("quantize", "--weights", "untrained", "--no-report", "-o", tmp_path / "int8.pt")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "int8.report.json").exists()
    for artefact in ("small.pt", "int8.pt"):
        result = invoke("run", "--weights", tmp_path / artefact, "--size", 32, "--steps", 3, "--device", "cpu",
                        "-o", tmp_path / f"{artefact}.png")
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / f"{artefact}.run.json").read_text())["weights"]["kind"] in ("pruned-structured", "int8")


def test_prune_layers_prunes_only_those(tmp_path):
    result = invoke("prune", "--weights", "untrained", "--layers", "conv_2,conv2_1", "--amount", 0.5, "--no-report",
                    "-o", tmp_path / "p.pt")
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / "p.pt", weights_only=True)
    assert float((state["features.0.weight"] == 0).float().mean()) == 0.0
    pruned = torch.cat([state["features.2.weight"].flatten(), state["features.5.weight"].flatten()])
    assert int((pruned == 0).sum()) == round(0.5 * pruned.numel())


def test_cli_errors_are_one_line_and_write_nothing(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.pt"
    cases = {
        "unknown method": (["prune", "--method", "l1-unstructure"], "Did you mean 'l1-unstructured'?"),
        "amount 0": (["prune", "--amount", 0], "outside (0, 1)"),
        "amount 1.5": (["prune", "--amount", 1.5], "outside (0, 1)"),
        "not a state_dict": (["prune", "--weights", notes], "not a PyTorch state_dict"),
        "not VGG19": (["quantize", "--weights", tmp_path / "other.pt"], "is not a VGG19 state_dict"),
        "empty calibration": (["quantize", "--calibration", empty], "holds no images"),
        "bad dtype": (["quantize", "--dtype", "int4"], "not supported"),
        "bad layer": (["prune", "--layers", "pool_2"], "only convs have weights"),
        "bad suffix": (["prune", "-o", tmp_path / "out.png"], "ending in .pt"),
    }
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    for name, (args, message) in cases.items():
        args = args if "-o" in args else [*args, "-o", out]
        result = invoke(*args, "--no-report")
        assert result.exit_code == 2, name
        assert message in result.output, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1, name
        assert not out.exists() and not (tmp_path / "out.report.json").exists(), name


def test_auto_weights_falling_back_to_untrained_warns(tmp_path):
    result = invoke("prune", "--no-report", "-o", tmp_path / "p.pt")  # STYLIZE_OFFLINE: auto -> untrained
    assert result.exit_code == 0, result.output
    assert "compressing UNTRAINED random weights" in result.output
    assert "UNTRAINED" in json.dumps(result.output) and (tmp_path / "p.pt").exists()
