"""dlp-sim's timeline: one evaluation as a Chrome / Perfetto trace (Trace Event Format), checked field by field."""

from __future__ import annotations

import json
import math

import pytest

import stylize.dlp as dlp
from stylize import stylize
from stylize.dlp.profile import TRACKS, chrome_trace, write_chrome_trace

PHASES = {"X", "M", "i"}  # complete slices, metadata, instant events: all this trace uses


def validate(trace: dict) -> None:
    """The Trace Event Format's JSON-object form: required fields and their types, per phase."""
    assert set(trace) >= {"traceEvents"} and trace.get("displayTimeUnit", "ms") in ("ms", "ns")
    for e in trace["traceEvents"]:
        assert isinstance(e["name"], str) and e["ph"] in PHASES
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name", "thread_sort_index") and isinstance(e["args"], dict)
            continue
        assert isinstance(e["ts"], float | int) and e["ts"] >= 0 and math.isfinite(e["ts"])
        if e["ph"] == "X":
            assert isinstance(e["dur"], float | int) and e["dur"] >= 0
        if e["ph"] == "i":
            assert e["s"] in ("g", "p", "t")
        if "args" in e:
            json.dumps(e["args"])


@pytest.fixture
def one_evaluation(pair):
    content, style = pair
    stops = []

    def first_only(record):
        if not stops:
            dlp.current().profile.stop_trace()  # what the run does after its first evaluation
        stops.append(record)

    result = stylize(content, style, weights="untrained", size=32, steps=3, write=False, device="dlp-sim", on_step=first_only)
    return result.profile


def test_trace_shows_one_evaluation_on_its_tracks(one_evaluation, tmp_path):
    profile = one_evaluation
    path = write_chrome_trace(profile, tmp_path / "x.dlp-trace.json")
    trace = json.loads(path.read_text())
    validate(trace)
    events = trace["traceEvents"]
    names = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert names == set(TRACKS)
    kernels = [e for e in events if e["ph"] == "X" and e["tid"] == TRACKS.index("kernels")]
    # One evaluation: the forward's kernels once (a profile of 3 evaluations counts them 3 + 1 times).
    convs = [e for e in kernels if e["name"] == "conv2d"]
    assert len(convs) == profile.ops["conv2d"].calls // 4 == 5  # conv_1 .. conv_5
    assert {"gram_mse", "conv2d.input_grad", "gram_mse.backward", "max_pool2d", "mse_loss"} <= {e["name"] for e in kernels}
    # Kernels run one after another on the simulated clock, and the tracks' slices never overlap.
    for tid in range(len(TRACKS)):
        slices = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e["ph"] == "X" and e["tid"] == tid)
        assert all(a_end <= b_start + 1e-6 for (_, a_end), (b_start, _) in zip(slices, slices[1:])), TRACKS[tid]
    total = sum(e["dur"] for e in kernels)
    assert total == pytest.approx(trace["otherData"]["sim_us"]) and 0 < total < profile.sim_s * 1e6
    # Every unit slice lies inside its kernel's slice; matrix and DMA work both appear.
    spans = [(e["ts"], e["ts"] + e["dur"]) for e in kernels]
    for e in events:
        if e["ph"] == "X" and e["tid"] != 0:
            assert any(s - 1e-6 <= e["ts"] and e["ts"] + e["dur"] <= t + 1e-6 for s, t in spans), e
    for track in ("matrix unit", "vector unit", "DMA"):
        assert any(e["ph"] == "X" and e["tid"] == TRACKS.index(track) for e in events), track


def test_trace_of_a_single_kernel_matches_the_cost_model():
    import torch

    with dlp.session("textbook") as profile:
        x = torch.rand(1, 16, 20, 20).to("dlp")
        torch.nn.functional.conv2d(x, torch.randn(8, 16, 3, 3).to("dlp"), padding=1)
        (name, cost), = [t for t in profile.trace if t[0] == "conv2d"]
        trace = chrome_trace(profile)
    validate(trace)
    kernel = next(e for e in trace["traceEvents"] if e["ph"] == "X" and e["name"] == "conv2d" and e["tid"] == 0)
    assert kernel["dur"] == pytest.approx(cost.time_s * 1e6) and kernel["args"]["macs"] == 8 * 16 * 20 * 20 * 9
    matrix = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["tid"] == TRACKS.index("matrix unit")]
    assert sum(e["dur"] for e in matrix) == pytest.approx(cost.compute_s * 1e6)  # one slice per tile group
    assert len(matrix) == sum(1 for part in cost.parts if part[4] and part[2] > 0)
    dma = [e for e in trace["traceEvents"] if e["tid"] == TRACKS.index("DMA") and e["name"] == "conv2d DMA"]
    assert sum(e["dur"] for e in dma) == pytest.approx(cost.dma_s * 1e6)


def test_fallbacks_show_as_instant_events():
    import torch

    with dlp.session("textbook") as profile:
        torch.cumsum(torch.arange(4.0).to("dlp"), 0)
        trace = chrome_trace(profile)
    validate(trace)
    assert [e["name"] for e in trace["traceEvents"] if e["ph"] == "i"] == ["host fallback: aten.cumsum.default"]
