"""Shared fixtures. No test touches the network or the real torch hub cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import stylize.dlp  # noqa: F401  (the dlp device before any test's backward: torch sizes its autograd device queues then)
from stylize import features


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    # TORCH_HOME in a temp dir: the ImageNet file is never found, nothing is downloaded.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("STYLIZE_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


def _pattern(width: int, height: int, seed: int) -> Image.Image:
    """A smooth, structured RGB picture (gradients + a disc + stripes), different per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    phase = rng.uniform(0, 6.28, 3)
    freq = rng.uniform(4, 12, 3)
    rgb = np.stack([0.5 + 0.5 * np.sin(freq[i] * (x if i % 2 else y) + phase[i]) for i in range(3)], -1)
    disc = (x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.05
    rgb[disc] = rng.uniform(0, 1, 3)
    return Image.fromarray((rgb * 255).astype(np.uint8), "RGB")


@pytest.fixture
def pair(tmp_path):
    """A small content (60x48) and style (52x52) image on disk."""
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    _pattern(60, 48, 1).save(content)
    _pattern(52, 52, 2).save(style)
    return content, style


@pytest.fixture
def make_image():
    return _pattern


@pytest.fixture
def untrained_file(tmp_path):
    """A features-only VGG19 state_dict (seeded untrained weights) up to conv5_1 saved as a file."""
    path = tmp_path / "vgg19-untrained.pt"
    net = features.init_untrained(features.vgg19_features(features.layer("conv5_1").index))
    torch.save(net.state_dict(), path)
    return path


def pytest_collection_modifyitems(config, items):
    import os

    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_download = pytest.mark.skip(reason="downloads 548 MB; set STYLIZE_ALLOW_DOWNLOAD=1 to run")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "download" in item.keywords and os.environ.get("STYLIZE_ALLOW_DOWNLOAD") != "1":
            item.add_marker(skip_download)


class StopAt:
    """An on_step callback that presses Ctrl-C at evaluation ``step``."""

    def __init__(self, step):
        self.step = step

    def __call__(self, record):
        if record.step == self.step:
            raise KeyboardInterrupt


def write_clip(path, pixels: list, fps: int = 10, seconds: float | None = None):
    """An H.264 clip of ``pixels`` (uint8 (H, W, 3) arrays; none: no video stream) at ``fps``, with an AAC tone
    of ``seconds`` (None: no audio). Needs PyAV (skips without it)."""
    from fractions import Fraction

    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps) if pixels else None
        if stream is not None:
            stream.width, stream.height, stream.pix_fmt = pixels[0].shape[1], pixels[0].shape[0], "yuv420p"
        tone = container.add_stream("aac", rate=8000) if seconds is not None else None
        if tone is not None:
            tone.layout = "mono"
        for k, array in enumerate(pixels):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode() if stream is not None else ():
            container.mux(packet)
        if tone is not None:
            samples = int(8000 * seconds)
            wave = (0.2 * np.sin(np.arange(samples) * 0.3)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[:, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 8000, start, Fraction(1, 8000)
                for packet in tone.encode(chunk):
                    container.mux(packet)
            for packet in tone.encode():
                container.mux(packet)
    return path
