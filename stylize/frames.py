"""Frames in and out of ``stylize video``: a clip is a video file (PyAV), a folder of images, or an animated
GIF/WebP; the result is encoded to a video (same frame rate, the audio copied unchanged) or left as a folder.

PyAV is imported on first use: it is the ``video`` extra (``pip install 'stylize[video]'``). Every problem a
user can fix is one :class:`StylizeError` line; a frame that cannot be decoded names its number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

from . import images
from .errors import StylizeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
ANIMATED_SUFFIXES = (".gif", ".webp", ".png", ".apng")  # animated when Pillow says so; a still is not a clip
VIDEO_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}  # what OUT may be
FOLDER_FPS = 25.0  # a folder of frames has no rate: this one unless --fps says


def require_av():
    """PyAV, or the one line that says how to install the extra."""
    try:
        import av
    except ImportError:
        from .flow import MISSING_EXTRA  # one message for both libraries

        raise StylizeError(MISSING_EXTRA) from None
    return av


@dataclass
class Clip:
    """What we read frames from: ``kind`` video | folder | animated, ``count`` frames at ``fps``."""

    path: Path
    kind: str
    count: int
    fps: Fraction
    files: list[Path] = field(default_factory=list)  # a folder's frames, in order

    @property
    def duration(self) -> float:
        return self.count / float(self.fps)


def _natural(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name.lower())]


def open_clip(path: str | Path) -> Clip:
    """Probe ``path`` (nothing decoded beyond the headers and packet count). Raises one line when it is not a clip."""
    path = Path(path)
    if not path.exists():
        raise StylizeError(f"input not found: {path}. Give a video file, a folder of frames or an animated GIF/WebP.")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural)
        if not files:
            raise StylizeError(f"{path}: no frames in this folder (expected images: {', '.join(IMAGE_SUFFIXES)}).")
        return Clip(path, "folder", len(files), Fraction(FOLDER_FPS), files)
    if path.suffix.lower() in ANIMATED_SUFFIXES or path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            with Image.open(path) as img:
                count = getattr(img, "n_frames", 1)
                if count < 2:
                    raise StylizeError(f"{path} is a single image, not a clip. Use `stylize run` for one image.")
                ms = [f.info.get("duration", 0) or 0 for f in ImageSequence.Iterator(img)]
        except (UnidentifiedImageError, OSError) as e:
            raise StylizeError(f"cannot read {path}: {e}. Give a video file, a folder of frames or an animated GIF/WebP.") from None
        total = sum(ms)
        fps = Fraction(round(1000 * count / total * 1000), 1000) if total > 0 else Fraction(10)  # GIF's default: 10/s
        return Clip(path, "animated", count, fps)
    av = require_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise StylizeError(f"{path} has no video stream. Give a video file.")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or stream.base_rate
            count = stream.frames or sum(1 for p in container.demux(stream) if p.size)  # some containers don't say
    except av.FFmpegError as e:
        raise StylizeError(f"cannot read {path} as a video: {_why(e)}. Give a video file (MP4, MOV, MKV, ...), "
                           "a folder of frames or an animated GIF/WebP.") from None
    if not fps or count < 1:
        raise StylizeError(f"{path}: the video stream has no frames.")
    return Clip(path, "video", count, Fraction(fps))


def _why(e: Exception) -> str:
    return " ".join(str(getattr(e, "strerror", None) or e).split())[:160]


def parse_range(text: str | None, count: int) -> tuple[int, int]:
    """``--frames A:B`` (1-based, inclusive; ``A:`` to the end, ``:B`` from the start) as 0-based [start, stop)."""
    if not text:
        return 0, count
    a, sep, b = text.partition(":")
    try:
        start = int(a) if a.strip() else 1
        stop = int(b) if b.strip() else count
        if not sep:
            stop = start
    except ValueError:
        raise StylizeError(f"--frames {text!r}: expected A:B, e.g. 1:48 (1-based, inclusive).") from None
    if not 1 <= start <= stop <= count:
        raise StylizeError(f"--frames {text}: outside the clip, which has frames 1 to {count}.")
    return start - 1, stop


def select(clip: Clip, frames: str | None, fps: float | None) -> tuple[list[int], Fraction]:
    """The source frames (0-based) that become the output's frames, and the output's rate.

    ``--fps`` resamples: output frame k (at time k / fps) is the source frame shown at that time, for every such
    time inside the selection, so the duration is kept (to within one output frame).
    """
    start, stop = parse_range(frames, clip.count)
    if fps is None or Fraction(fps).limit_denominator(1001) == clip.fps:
        return list(range(start, stop)), clip.fps
    rate = Fraction(fps).limit_denominator(1001)
    n = max(1, math.ceil((stop - start) * rate / clip.fps - 1e-9))  # every output time k / rate inside the selection
    return [start + math.floor(k * clip.fps / rate + 1e-9) for k in range(n)], rate


def read(clip: Clip, wanted: list[int]) -> Iterator[tuple[int, Image.Image]]:
    """Yield ``(source index, RGB image)`` for the ``wanted`` (sorted) source frames, decoding in order.

    A frame that cannot be decoded stops the clip with one line naming it (1-based)."""
    last = wanted[-1] if wanted else -1
    want = set(wanted)
    if clip.kind == "folder":
        for i in sorted(want):
            try:
                yield i, images.load_image(clip.files[i])
            except StylizeError as e:
                raise StylizeError(f"frame {i + 1} ({clip.files[i].name}): {e}") from None
        return
    if clip.kind == "animated":
        i = -1
        try:
            with Image.open(clip.path) as img:
                for i, f in enumerate(ImageSequence.Iterator(img)):
                    if i in want:
                        yield i, f.convert("RGB")
                    if i >= last:
                        return
        except OSError as e:
            raise StylizeError(f"frame {i + 2} of {clip.path}: cannot decode: {e}.") from None
        return
    av = require_av()
    i = -1
    try:
        with av.open(str(clip.path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                i += 1
                if i in want:
                    yield i, frame.to_image().convert("RGB")
                if i >= last:
                    return
    except av.FFmpegError as e:
        raise StylizeError(f"frame {i + 2} of {clip.path}: cannot decode: {_why(e)}.") from None
    if i < last:
        raise StylizeError(f"frame {i + 2} of {clip.path}: cannot decode (the stream ends at frame {i + 1}).")


def encode(frame_files: list[Path], out: Path, tmp: Path, fps: Fraction, source: Clip,
           span: tuple[float, float] | None) -> None:
    """Encode ``frame_files`` to ``tmp`` (in ``out``'s format) at ``fps``; copy the source's audio packets whose
    time falls in ``span`` (seconds) unchanged (remux, no re-encoding)."""
    av = require_av()
    try:
        _encode(av, frame_files, out, tmp, fps, source, span)
    except av.FFmpegError as e:
        raise StylizeError(f"cannot encode {out}: {_why(e)}. The finished frames are kept; try another container "
                           "(e.g. .mkv, which takes any audio).") from None


def _encode(av, frame_files, out, tmp, fps, source, span) -> None:
    first = Image.open(frame_files[0])
    width, height = first.width - first.width % 2, first.height - first.height % 2  # yuv420p: even sides
    codec = "libx264" if _has_encoder(av, "libx264") else "mpeg4"
    with av.open(str(tmp), "w", format=VIDEO_FORMATS[out.suffix.lower()]) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = 1 / fps
        audio_in = None
        if source.kind == "video" and span is not None:
            src = av.open(str(source.path))
            if src.streams.audio:
                audio_in = src.streams.audio[0]
                audio_out = container.add_stream_from_template(audio_in)
        for k, file in enumerate(frame_files):
            with Image.open(file) as img:
                frame = av.VideoFrame.from_image(img.convert("RGB").crop((0, 0, width, height)))
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_in is not None:
            t0, t1 = span
            offset = round(t0 / audio_in.time_base) if audio_in.time_base else 0
            for packet in src.demux(audio_in):
                if packet.dts is None or packet.pts is None:
                    continue
                t = float(packet.pts * audio_in.time_base)
                if (t0 > 0 and t < t0 - 1e-6) or t >= t1 - 1e-6:  # from the start: the encoder's priming too
                    continue
                packet.pts -= offset
                packet.dts -= offset
                packet.stream = audio_out
                container.mux(packet)
            src.close()


def _has_encoder(av, name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - PyAV raises several kinds for an unknown codec
        return False
    return True
