"""A short procedural clip for `stylize video` (no third-party media): a textured square and a disc moving over
a slowly panning textured background, with a sine tone as its audio track.

    python scripts/make_clip.py clip.mp4 [--frames 12] [--fps 12] [--width 384] [--height 256]
"""

from __future__ import annotations

import argparse
from fractions import Fraction

import av
import numpy as np


def texture(h: int, w: int, seed: int, cells: int = 8) -> np.ndarray:
    """Smooth colour noise: random cells, bilinearly upsampled (something the flow can lock onto), (h, w, 3) in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // cells + 2, w // cells + 2, 3))
    ys, xs = np.linspace(0, h / cells, h), np.linspace(0, w / cells, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    c = coarse
    return ((1 - fy) * (1 - fx) * c[y0][:, x0] + (1 - fy) * fx * c[y0][:, x0 + 1]
            + fy * (1 - fx) * c[y0 + 1][:, x0] + fy * fx * c[y0 + 1][:, x0 + 1])


def frames(n: int, width: int, height: int):
    """The clip's frames as (height, width, 3) uint8 arrays."""
    pan = 3  # background pixels per frame
    background = texture(height, width + pan * n, 1) * 0.6 + np.linspace(0.2, 0.0, height)[:, None, None]
    square = texture(height // 3, height // 3, 2, cells=6)
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(n):
        image = background[:, pan * t:pan * t + width].copy()
        s = square.shape[0]
        x, y = width // 8 + 6 * t, height // 3 + 2 * t
        image[y:y + s, x:x + s] = square
        cx, cy, r = width * 3 // 4 - 5 * t, height // 4 + 3 * t, height // 7
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        image[disc] = [0.9, 0.75, 0.2] * (0.8 + 0.2 * np.sin(xx[disc] / 3.0))[:, None]
        yield (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def write(path: str, n: int = 12, fps: int = 12, width: int = 384, height: int = 256, audio: bool = True) -> None:
    with av.open(path, "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": "12"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        tone = None
        if audio:
            tone = container.add_stream("aac", rate=44100)
            tone.layout = "mono"
        for k, pixels in enumerate(frames(n, width, height)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = k
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if tone is not None:
            samples = int(44100 * n / fps)
            t = np.arange(samples) / 44100
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[:, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 44100, start, Fraction(1, 44100)
                for packet in tone.encode(chunk):
                    container.mux(packet)
            for packet in tone.encode():
                container.mux(packet)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--height", type=int, default=256)
    args = parser.parse_args()
    write(args.output, args.frames, args.fps, args.width, args.height)
    print(args.output)
