"""Checks that need what CI does not have: a CUDA device, or the network. Skipped otherwise."""

import pytest
import torch

from stylize import stylize, weights

TINY = {"size": 32, "steps": 10, "weights": "untrained"}


@pytest.mark.gpu
def test_cuda_run_matches_cpu(pair):
    cpu = stylize(*pair, write=False, device="cpu", **TINY)
    gpu = stylize(*pair, write=False, device="cuda", **TINY)
    assert gpu.device.startswith("cuda")
    # Same losses at the first evaluation (same init, same weights); cuDNN may use TF32 for convs, hence 1e-2.
    assert gpu.history[0].total == pytest.approx(cpu.history[0].total, rel=1e-2)
    assert gpu.image.shape == cpu.image.shape


@pytest.mark.gpu
def test_auto_picks_cuda_and_size_512(pair):
    result = stylize(*pair, write=False, **{**TINY, "size": None, "steps": 2})
    assert result.device.startswith("cuda") and result.config.size == 512


@pytest.mark.download
def test_imagenet_download_checks_the_hash(monkeypatch):
    monkeypatch.delenv("STYLIZE_OFFLINE")
    net, info = weights.load_features("imagenet", 10)
    assert info.kind == "imagenet" and weights.sha256(weights.cache_path()).startswith(weights.IMAGENET_SHA256_PREFIX)
    assert net[0].weight.shape == (64, 3, 3, 3) and torch.isfinite(net[0].weight).all()
