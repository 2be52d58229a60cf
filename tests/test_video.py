"""stylize video: optical flow, warp and consistency mask on a synthetic clip; the temporal loss; frames in and
out; resuming; the command (frame count, fps, audio)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylize import flow, losses
from stylize.objective import LossWeights, Terms
from conftest import write_clip

pytest.importorskip("cv2")

H = W = 96
SIDE, X0, Y0 = 32, 20, 24  # the square at frame 0
DX, DY = 4, 2  # its motion per frame, in pixels


def texture(h: int, w: int, seed: int) -> torch.Tensor:
    """Smooth random colour texture (bicubic upsampled noise): something optical flow can lock onto."""
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, h // 4, w // 4, generator=g), size=(h, w), mode="bicubic",
                         align_corners=False).clamp(0, 1)


def frame(t: int) -> torch.Tensor:
    """A textured square moving by (DX, DY) per frame over a static, darker textured background."""
    image = texture(H, W, 1) * 0.5
    x, y = X0 + DX * t, Y0 + DY * t
    image[..., y:y + SIDE, x:x + SIDE] = texture(SIDE, SIDE, 2)
    return image


INNER = (slice(Y0 + DY + 4, Y0 + DY + SIDE - 4), slice(X0 + DX + 4, X0 + DX + SIDE - 4))  # the square at t=1, eroded


@pytest.fixture(scope="module")
def flows():
    a, b = frame(0), frame(1)
    return a, b, flow.flow(a, b), flow.flow(b, a)


def test_the_flow_recovers_the_shift_inside_the_square(flows):
    _, _, forward, backward = flows
    inside = backward[INNER]  # at frame 1, pointing back to frame 0
    assert np.median(inside[..., 0]) == pytest.approx(-DX, abs=0.1)
    assert np.median(inside[..., 1]) == pytest.approx(-DY, abs=0.1)
    assert np.abs(inside - [-DX, -DY]).max() < 0.5
    ys, xs = INNER[0].start - DY, INNER[1].start - DX  # the same pixels at frame 0, pointing forward
    out = forward[ys:ys + SIDE - 8, xs:xs + SIDE - 8]
    assert np.median(out[..., 0]) == pytest.approx(DX, abs=0.1) and np.median(out[..., 1]) == pytest.approx(DY, abs=0.1)


def test_the_warp_reproduces_the_next_frame_inside_the_square(flows):
    a, b, _, backward = flows
    warped = flow.warp(a, backward)
    err = (warped - b)[..., INNER[0], INNER[1]].abs()
    assert err.mean() < 0.01 and err.max() < 0.1
    # an exact integer flow is an exact shift (the reference: slicing)
    exact = np.zeros((H, W, 2), np.float32)
    exact[..., 0], exact[..., 1] = -DX, -DY
    shifted = flow.warp(a, exact)
    assert torch.allclose(shifted[..., DY:, DX:], a[..., :H - DY, :W - DX], atol=1e-5)


def test_the_mask_marks_the_disoccluded_pixels_inconsistent(flows):
    _, _, forward, backward = flows
    mask = flow.consistency(forward, backward)[0, 0].bool()
    disoccluded = torch.zeros(H, W, dtype=torch.bool)
    disoccluded[Y0:Y0 + SIDE, X0:X0 + SIDE] = True  # behind the square at frame 0 ...
    disoccluded[Y0 + DY:Y0 + DY + SIDE, X0 + DX:X0 + DX + SIDE] = False  # ... and not under it at frame 1
    assert disoccluded.sum() == SIDE * SIDE - (SIDE - DX) * (SIDE - DY)
    assert (~mask[disoccluded]).float().mean() > 0.75  # most of the revealed strip is dropped
    assert mask[INNER].all()  # the square's inside is trusted
    far = torch.ones(H, W, dtype=torch.bool)
    far[Y0 - 8:Y0 + DY + SIDE + 8, X0 - 8:X0 + DX + SIDE + 8] = False
    assert mask[far].float().mean() > 0.95  # so is the static background away from the square


def test_the_mask_drops_pixels_whose_match_left_the_frame():
    still = np.zeros((8, 8, 2), np.float32)
    backward = still.copy()
    backward[..., 0] = -3.0  # everything came from 3 px to the left: columns 0..2 came from outside
    forward = still.copy()
    forward[..., 0] = 3.0
    mask = flow.consistency(forward, backward, boundaries=False)[0, 0]
    assert mask[:, :3].sum() == 0 and mask[:, 3:].all()


def test_the_temporal_loss_is_the_masked_mean_of_squares():
    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(1, 3, 5, 6, generator=g), torch.rand(1, 3, 5, 6, generator=g)
    mask = (torch.rand(1, 1, 5, 6, generator=g) > 0.4).float()
    expected = sum(float((x[0, c] - w[0, c])[mask[0, 0].bool()].square().sum()) for c in range(3)) / (3 * mask.sum())
    assert losses.temporal_loss(x, w, mask).item() == pytest.approx(float(expected), rel=1e-6)
    assert losses.temporal_loss(x, w, torch.zeros_like(mask)).item() == 0.0
    assert losses.temporal_loss(x, x, mask).item() == 0.0


def test_the_temporal_loss_gradient():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.rand(1, 3, 4, 5, generator=g, dtype=torch.float64)
    mask = (torch.rand(1, 1, 4, 5, generator=g) > 0.5).double()
    assert torch.autograd.gradcheck(lambda image: losses.temporal_loss(image, w, mask), (x,))
    x.grad = None
    losses.temporal_loss(x, w, mask).backward()  # closed form: 2 mask (x - w) / (C * sum(mask))
    assert torch.allclose(x.grad, 2 * mask * (x.detach() - w) / (3 * mask.sum()))


def test_the_temporal_term_is_in_the_objective_total():
    from stylize.config import Config

    assert LossWeights.of(Config(temporal_weight=7.0)).temporal == 7.0
    terms = Terms(torch.tensor(1.0), torch.tensor(2.0), 0.5, torch.tensor(0.25))
    assert float(terms.total) == pytest.approx(3.75)


# ---- frames in and out, resuming, the command ------------------------------------------------------------------

av = pytest.importorskip("av")

from fractions import Fraction  # noqa: E402

from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from stylize import frames as frames_lib, video  # noqa: E402
from stylize.cli.app import app  # noqa: E402
from stylize.config import build_config  # noqa: E402
from stylize.errors import StylizeError  # noqa: E402

TINY = ["--size", "32", "--first-steps", "3", "--steps", "2", "--weights", "untrained", "--device", "cpu", "-q"]


def clip_frames(n: int, side: int = 32):
    """n frames of the moving square, as uint8 (side, side, 3) arrays."""
    for t in range(n):
        image = frame(t)[..., :side, :side]  # the square's corner moving through the top-left
        yield (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def make_clip(path, n: int = 5, fps: int = 10, audio: bool = True, video_stream: bool = True) -> None:
    """A tiny H.264 clip (32x32) of the moving square with an AAC tone of the same duration."""
    write_clip(path, list(clip_frames(n)) if video_stream else [], fps, seconds=n / fps if audio else None)


def audio_packets(path):
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_the_command_keeps_frame_count_fps_and_audio(tmp_path, pair):
    make_clip(tmp_path / "clip.mp4", n=5, fps=10)
    result = invoke("video", tmp_path / "clip.mp4", pair[1], "-o", tmp_path / "out.mp4", *TINY)
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "out.mp4")) as out:
        v = out.streams.video[0]
        assert sum(1 for _ in out.decode(v)) == 5
        assert v.average_rate == 10
        assert len(out.streams.audio) == 1 and out.streams.audio[0].codec_context.name == "aac"
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(tmp_path / "clip.mp4")  # copied unchanged
    assert len(list((tmp_path / "out.frames").glob("frame*.png"))) == 5


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, pair):
    make_clip(tmp_path / "clip.mp4", n=4, audio=False)
    cfg = build_config(overrides={"size": 32, "weights": "untrained", "device": "cpu", "style": [str(pair[1])]})
    settings = {"first_steps": 3, "steps": 2}
    whole = video.stylize_video(video.VideoConfig(str(tmp_path / "clip.mp4"), str(tmp_path / "a"), **settings), cfg)
    assert whole.status == "completed" and len(whole.frames) == 4

    def stop_after_two(stats, total):
        if stats.index == 1:
            raise KeyboardInterrupt  # Ctrl-C right after frame 2 was written

    cut = video.stylize_video(video.VideoConfig(str(tmp_path / "clip.mp4"), str(tmp_path / "b"), **settings), cfg,
                              on_frame=stop_after_two)
    assert cut.status == "interrupted" and sorted(p.name for p in (tmp_path / "b").glob("frame*")) == \
        ["frame000001.png", "frame000002.png"]
    rest = video.stylize_video(video.VideoConfig(str(tmp_path / "clip.mp4"), str(tmp_path / "b"), **settings), cfg)
    assert [f.resumed for f in rest.frames] == [True, True, False, False]
    for k in range(4):
        a = np.asarray(Image.open(tmp_path / "a" / f"frame{k + 1:06d}.png"))
        b = np.asarray(Image.open(tmp_path / "b" / f"frame{k + 1:06d}.png"))
        assert np.array_equal(a, b), f"frame {k + 1} differs"
    # other settings in the same work folder: refused, nothing overwritten
    with pytest.raises(StylizeError, match="other settings"):
        video.stylize_video(video.VideoConfig(str(tmp_path / "clip.mp4"), str(tmp_path / "b"), first_steps=3, steps=3), cfg)


def test_an_animated_gif_and_a_folder_of_frames(tmp_path, pair):
    pictures = [Image.fromarray(p) for p in clip_frames(3)]
    pictures[0].save(tmp_path / "anim.gif", save_all=True, append_images=pictures[1:], duration=50, loop=0)
    clip = frames_lib.open_clip(tmp_path / "anim.gif")
    assert (clip.kind, clip.count, clip.fps) == ("animated", 3, 20)
    result = invoke("video", tmp_path / "anim.gif", pair[1], "-o", tmp_path / "out", *TINY)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("frame*.png")) == [f"frame{k:06d}.png" for k in (1, 2, 3)]
    folder = frames_lib.open_clip(tmp_path / "out")
    assert (folder.kind, folder.count) == ("folder", 3)


def test_frames_and_fps_select_the_source_frames():
    clip = frames_lib.Clip(None, "video", 10, Fraction(10))
    assert frames_lib.select(clip, "3:6", None) == ([2, 3, 4, 5], 10)
    assert frames_lib.select(clip, None, 5) == ([0, 2, 4, 6, 8], 5)  # same duration, half the rate
    assert frames_lib.select(clip, "1:3", 5)[0] == [0, 2]  # 0.3 s: output times 0 and 0.2 s
    assert frames_lib.select(clip, "2:", 20)[0] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9]
    for bad in ("0:3", "4:11", "5:3", "x"):
        with pytest.raises(StylizeError):
            frames_lib.select(clip, bad, None)


def _refused(result, *words):
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line and all(w in line for w in words), line


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, pair):
    (tmp_path / "notes.mp4").write_text("not a video")
    _refused(invoke("video", tmp_path / "notes.mp4", pair[1], "-o", tmp_path / "o1.mp4", *TINY), "cannot read")
    make_clip(tmp_path / "sound.mp4", video_stream=False)
    _refused(invoke("video", tmp_path / "sound.mp4", pair[1], "-o", tmp_path / "o2.mp4", *TINY), "no video stream")
    make_clip(tmp_path / "clip.mp4", n=3, audio=False)
    _refused(invoke("video", tmp_path / "clip.mp4", pair[1], "-o", tmp_path / "o3.mp4", "--frames", "2:9", *TINY),
             "outside the clip", "1 to 3")
    (tmp_path / "file").write_text("")
    _refused(invoke("video", tmp_path / "clip.mp4", pair[1], "-o", tmp_path / "file" / "o4.mp4", *TINY), "cannot write")
    _refused(invoke("video", tmp_path / "clip.mp4", pair[1], "-o", tmp_path / "o5.gif", *TINY), "unsupported extension")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("o")) == []


def test_a_corrupt_frame_stops_with_its_number_and_keeps_the_finished_ones(tmp_path, pair):
    (tmp_path / "in").mkdir()
    for k, pixels in enumerate(clip_frames(4)):
        Image.fromarray(pixels).save(tmp_path / "in" / f"f{k + 1}.png")
    (tmp_path / "in" / "f3.png").write_bytes((tmp_path / "in" / "f3.png").read_bytes()[:60])  # truncated
    result = invoke("video", tmp_path / "in", pair[1], "-o", tmp_path / "out", *TINY)
    _refused(result, "frame 3", "f3.png", "frames 1 to 2 are kept")
    assert sorted(p.name for p in (tmp_path / "out").glob("frame*.png")) == ["frame000001.png", "frame000002.png"]


def test_a_missing_extra_is_one_line(tmp_path, pair, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    make_clip(tmp_path / "clip.mp4", n=2, audio=False)
    _refused(invoke("video", tmp_path / "clip.mp4", pair[1], "-o", tmp_path / "out.mp4", *TINY), "stylize[video]")
    assert not (tmp_path / "out.frames").exists()


def test_the_objective_adds_the_weighted_temporal_term(pair):
    from stylize import features
    from stylize.config import Config
    from stylize.objective import PlainObjective

    net = features.init_untrained(features.vgg19_features(features.layer("conv_4").index))
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    cfg = Config(temporal_weight=50.0, style_layers={"conv_1": 1.0}, content_layers={"conv_2": 1.0})
    objective = PlainObjective.build(net, content, [style], cfg)
    image = torch.rand(1, 3, 32, 32, generator=g)  # values only: no gradient needed here
    plain = objective.evaluate(image)
    assert plain.temporal == 0.0  # no target: no term
    warped, mask = torch.rand(1, 3, 32, 32, generator=g), (torch.rand(1, 1, 32, 32, generator=g) > 0.3).float()
    objective.temporal_target = (warped, mask)
    held = objective.evaluate(image)
    assert float(held.temporal) == pytest.approx(50.0 * float(losses.temporal_loss(image, warped, mask)), rel=1e-6)
    assert float(held.total) == pytest.approx(float(plain.total) + float(held.temporal), rel=1e-5)
    from stylize.optimize import optimize

    history = optimize(objective, image.clone(), steps=2).history  # the loop records the term (the logs show it)
    assert history[0].temporal == pytest.approx(float(held.temporal), rel=1e-5) and history[0].temporal > 0


def test_encode_partial_encodes_the_finished_frames_after_ctrl_c(tmp_path, pair):
    make_clip(tmp_path / "clip.mp4", n=4, fps=10)
    cfg = build_config(overrides={"size": 32, "weights": "untrained", "device": "cpu", "style": [str(pair[1])]})

    def stop_after_two(stats, total):
        if stats.index == 1:
            raise KeyboardInterrupt

    vcfg = video.VideoConfig(str(tmp_path / "clip.mp4"), str(tmp_path / "out.mp4"), first_steps=2, steps=1,
                             encode_partial=True)
    result = video.stylize_video(vcfg, cfg, on_frame=stop_after_two)
    assert result.status == "interrupted" and result.encoded
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert sum(1 for _ in out.decode(out.streams.video[0])) == 2
        assert out.streams.video[0].average_rate == 10
    # the audio of those two frames' time (0.2 s) only: packets starting before it, priming included
    with av.open(str(tmp_path / "clip.mp4")) as src:
        a = src.streams.audio[0]
        expected = [bytes(p) for p in src.demux(a) if p.size and p.pts * a.time_base < Fraction(2, 10)]
    assert audio_packets(tmp_path / "out.mp4") == expected
    assert not (tmp_path / "out.mp4").with_suffix(".frames").joinpath("frame000003.png").exists()
