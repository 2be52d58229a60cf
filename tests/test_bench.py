"""stylize bench: the FLOP count against a hand count, the measurement itself on a tiny size, and the CLI."""

import json

import pytest
import torch

from stylize import bench, devices, build_config
from typer.testing import CliRunner

from stylize.cli import app

runner = CliRunner()


def test_flops_of_the_seed_layers_by_hand():
    h, w = 32, 40
    p0, p1, p2 = h * w, (h // 2) * (w // 2), (h // 4) * (w // 4)  # pixels after 0, 1, 2 poolings
    convs = [(3, 64, p0), (64, 64, p0), (64, 128, p1), (128, 128, p1), (128, 256, p2)]  # conv_1..conv_5
    want = sum(2 * 2 * cin * cout * 9 * p for cin, cout, p in convs)  # forward + input gradient
    want += sum(2 * 2 * cout**2 * p for _, cout, p in convs)  # Gram + its backward at each style tap
    cfg = build_config("default")
    assert bench.flops_per_eval(h, w, cfg.content_layers, cfg.style_layers) == want


@pytest.mark.slow
def test_bench_size_measures_both_implementations():
    devices = ["cpu", "cuda"] if not torch.cuda.is_available() else ["cpu"]
    result = bench.bench(bench.BenchConfig(devices, [32], "default", ["weights=untrained"], repeat=2))
    row = result.rows[0]
    assert (row.device, row.size, row.height) == ("cpu", 32, 32) and row.width > 32
    for timing in (row.ours, row.seed):
        assert len(timing.eval_s) == 2 and all(t > 0 for t in timing.eval_s) and timing.setup_s > 0
        assert timing.peak_bytes is None or timing.peak_bytes > 100 * 2**20
    assert row.speedup == pytest.approx(row.seed.median_s / row.ours.median_s)
    assert result.machine["cpu"]["conv_peak_gflops"] > 0
    if not torch.cuda.is_available():
        assert result.rows[1].error.startswith("not available: ") and result.rows[1].ours is None


@pytest.mark.slow
def test_peak_memory_is_a_fresh_process_peak():
    cfg = build_config("default", overrides={"weights": "untrained"})
    cpu = devices.resolve("cpu")
    small, large = (bench.peak_memory("seed", cpu, size, cfg, None) for size in (32, 192))
    if small is None:
        pytest.skip("/proc/self/status has no VmHWM here")
    assert 100 * 2**20 < small < large  # the runtime alone is hundreds of MiB; a larger image needs more
    assert large - small > 30 * 2**20  # 192 px: the seed keeps > 30 MiB of activations for backward


@pytest.mark.slow
def test_time_to_quality_reaches_the_seed_target():
    cfg = build_config("default", overrides={"weights": "untrained"})
    net, _ = bench.load_features(cfg.weights, 12)
    content, style = bench._images(32, torch.device("cpu"))
    q = bench.time_to_quality("cpu", 32, cfg, net.eval(), content, style, evals=30)
    assert q["target_loss"] <= q["seed_final_loss"] and 1 <= q["seed_best_at_eval"] <= 30
    assert q["ours_s"] is not None and q["ours_evals"] >= 1 and q["speedup"] == pytest.approx(q["seed_s"] / q["ours_s"])


@pytest.mark.slow
def _no_fresh_process_peaks(monkeypatch):
    """Peak memory spawns a fresh Python per implementation (~4 s each); test_peak_memory_is_a_fresh_process_peak
    and test_bench_size_measures_both_implementations hold it, the tests of other things skip it."""
    monkeypatch.setattr(bench, "peak_memory", lambda *args: None)


def test_cli_bench_writes_json(tmp_path, monkeypatch):
    _no_fresh_process_peaks(monkeypatch)
    out = tmp_path / "b.json"
    result = runner.invoke(app, ["bench", "--size", "32", "--repeat", "1", "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["config"] == "default" and data["rows"][0]["speedup"] > 0 and data["rows"][0]["ours"]["median_s"] > 0
    assert "speedup" in result.stdout and "cpu" in data["machine"]


@pytest.mark.parametrize("args, message", [
    (["--size", "8"], "too small to benchmark"),
    (["--device", "cpux"], "unknown device 'cpux'. Did you mean 'cpu'?"),
    (["--json", "x.txt"], "unsupported extension"),
    (["-c", "nope"], "config file not found"),
    (["--set", "style_layers={conv_1: 1, conv_2: 2}"], "one weight for all style layers"),
    (["-c", "untrained"], "no loss normalization"),
])
def test_cli_bench_bad_input(args, message):
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_bench_translates_the_papers_layer_names_for_the_seeds_code(monkeypatch):
    """gatys.yaml names layers conv4_2...; the seed's code knows conv_N only. The warm-up check inside bench
    raises if the two implementations' first losses differ by more than 1e-3."""
    _no_fresh_process_peaks(monkeypatch)
    row = bench.bench(bench.BenchConfig(["cpu"], [32], "gatys", ["weights=untrained"], repeat=1)).rows[0]
    assert row.ours.median_s > 0 and row.seed.median_s > 0
