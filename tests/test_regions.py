"""Regional styles (Gatys et al. 2017): guided Gram matrices against closed forms, gradients per region, masks
through the schedule, the CLI's refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylize import features, losses, regions, schedule
from stylize.cli.app import app
from stylize.config import build_config
from stylize.demo import demo_pair
from stylize.devices import TorchBackend
from stylize.errors import StylizeError
from stylize.losses import MaskedStyleLoss, guided_gram, mask_at, masked_style_loss
from stylize.objective import FusedObjective, PlainObjective

torch.set_default_dtype(torch.float32)


def halves(h: int, w: int) -> torch.Tensor:
    """(2, 1, h, w): the left half, the right half (hard masks)."""
    left = torch.zeros(1, 1, h, w)
    left[..., : w // 2] = 1
    return torch.cat([left, 1 - left])


def tiny_net(upto: str = "conv_3"):
    return features.init_untrained(features.vgg19_features(features.layer(upto).index)).double().eval()


# ---- the math, closed forms ----

def test_guided_gram_is_the_gram_of_the_region_alone():
    f = torch.randn(1, 5, 6, 8, dtype=torch.float64)
    mask = halves(6, 8)[:1].double()
    inside = f[0][:, :, :4].reshape(5, -1)  # the left half's pixels only
    assert torch.allclose(guided_gram(f, mask), inside @ inside.T / (5 * inside.shape[1]))
    assert torch.allclose(guided_gram(f, torch.ones(1, 1, 6, 8, dtype=torch.float64)), losses.gram_matrix(f))


def test_masked_loss_gradient_matches_its_closed_form():
    """d/dF sum_r w_r/C^2 ||G_r - T_r||^2 = sum_r 4 w_r / (C^3 S_r) (G_r - T_r) (F m_r) m_r, S_r = sum m_r^2."""
    c, h, w = 4, 5, 6
    f = torch.randn(1, c, h, w, dtype=torch.float64, requires_grad=True)
    masks = torch.rand(2, 1, h, w, dtype=torch.float64)  # soft masks
    targets = torch.randn(2, c, c, dtype=torch.float64)
    targets = targets + targets.transpose(1, 2)  # symmetric, as a Gram target is
    weights = [1.0, 0.5]
    masked_style_loss(f, masks, targets, weights).backward()
    expected = torch.zeros_like(f)
    for r, wr in enumerate(weights):
        m, s = masks[r:r + 1], masks[r].square().sum()
        fm = (f.detach() * m).reshape(c, -1)
        d = fm @ fm.T / (c * s) - targets[r]
        expected += (4 * wr / (c ** 3 * s) * (d @ fm)).view(1, c, h, w) * m
    assert torch.allclose(f.grad, expected)
    x = f.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: masked_style_loss(x, masks, targets, weights), (x,))


def test_each_hard_region_gradient_depends_only_on_its_own_style():
    """Two hard masks: perturbing region 0's target changes the gradient on region 0's pixels only."""
    c, h, w = 4, 6, 8
    f = torch.randn(1, c, h, w, dtype=torch.float64)
    masks = halves(h, w).double()
    targets = torch.randn(2, c, c, dtype=torch.float64)

    def grad(t):
        x = f.clone().requires_grad_()
        masked_style_loss(x, masks, t, [1.0, 1.0]).backward()
        return x.grad

    g, perturbed = grad(targets), targets.clone()
    perturbed[0] += torch.randn(c, c, dtype=torch.float64)
    g2 = grad(perturbed)
    left, right = masks[0].bool().expand(c, h, w), masks[1].bool().expand(c, h, w)
    assert torch.equal(g[0][right], g2[0][right])  # region 1's gradient: unchanged, bit for bit
    assert not torch.allclose(g[0][left], g2[0][left])  # region 0's: changed


def test_mask_at_box_filters_and_erodes():
    m = halves(8, 8)[:1]
    small = mask_at(m, (4, 4))
    assert torch.equal(small[0, 0], torch.tensor([[1.0, 1, 0, 0]] * 4))
    eroded = mask_at(m, (8, 8), erode=1)
    assert eroded[0, 0, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]  # one column less; the image border not eroded
    odd = mask_at(m, (3, 3))  # VGG's floor: any size
    assert odd.shape[-2:] == (3, 3) and odd[0, 0, 0, 0] == 1 and odd[0, 0, 0, 2] == 0


# ---- through the network ----

def stage_regions(masks, style_of, style_masks=None, weights=None, erode=0):
    n = masks.shape[0]
    return regions.StageRegions(masks, list(style_of), style_masks or [None] * n, weights or [1.0] * n, erode)


def model(net, content, styles, regs, style_layers=("conv_1", "conv_3")):
    layers = {n: 1.0 for n in style_layers}
    return features.build_style_model(net, content, styles, {"conv_2": 1.0}, layers, regions=regs)


def test_one_mask_over_everything_is_the_plain_loss():
    torch.manual_seed(0)
    net = tiny_net()
    content, style = torch.rand(1, 3, 16, 20, dtype=torch.float64), torch.rand(1, 3, 16, 20, dtype=torch.float64)
    image = torch.rand(1, 3, 16, 20, dtype=torch.float64)
    plain, _, plain_sl = model(net, content, [style], None)
    everything = stage_regions(torch.ones(1, 1, 16, 20, dtype=torch.float64), [0])
    masked, _, masked_sl = model(net, content, [style], everything)
    assert all(isinstance(m, MaskedStyleLoss) for m in masked_sl)
    grads = []
    for m, sl in ((plain, plain_sl), (masked, masked_sl)):
        x = image.clone().requires_grad_()
        m(x)
        total = sum(s.loss for s in sl)
        total.backward()
        grads.append((total.detach(), x.grad))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-12)
    assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-18)


def test_every_region_loss_receives_gradients():
    """neural-style-pt #46's fork: only the first mask got gradients. Here each region's own loss (weights one-hot)
    has a gradient on its own pixels, and the total's gradient reaches all three regions."""
    torch.manual_seed(1)
    net = tiny_net()
    h, w = 16, 24
    masks = torch.zeros(3, 1, h, w, dtype=torch.float64)
    for r in range(3):
        masks[r, :, :, 8 * r:8 * (r + 1)] = 1
    content = torch.rand(1, 3, h, w, dtype=torch.float64)
    styles = [torch.rand(1, 3, h, w, dtype=torch.float64) for _ in range(3)]
    image = torch.rand(1, 3, h, w, dtype=torch.float64)
    for r in range(3):
        weights = [float(k == r) for k in range(3)]
        m, _, sl = model(net, content, styles, stage_regions(masks, range(3), weights=weights), ("conv_1",))
        x = image.clone().requires_grad_()
        m(x)
        sl[0].loss.backward()
        inside = x.grad[..., :, 8 * r + 1:8 * (r + 1) - 1]  # conv_1's 3x3 reach: the columns next door are shared
        assert inside.abs().min() > 0, f"region {r} got no gradient"
        outside = torch.cat([x.grad[..., :, : max(0, 8 * r - 1)], x.grad[..., :, 8 * (r + 1) + 1:]], -1)
        assert outside.abs().max() == 0  # and nothing leaks beyond the conv's reach
    m, _, sl = model(net, content, styles, stage_regions(masks, range(3)))
    x = image.clone().requires_grad_()
    m(x)
    sum(s.loss for s in sl).backward()
    for r in range(3):
        assert x.grad[..., :, 8 * r:8 * (r + 1)].abs().sum() > 0


def test_a_region_target_is_its_own_style_guided_by_its_style_map():
    torch.manual_seed(2)
    net = tiny_net("conv_1")
    content = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    a, b = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    style_map = halves(8, 8)[1:].double()  # b's right half only
    regs = stage_regions(halves(8, 8).double(), [0, 1], style_masks=[None, style_map])
    _, _, (sl,) = features.build_style_model(net, content, [a, b], {}, {"conv_1": 1.0}, regions=regs)
    fa, fb = net[0](features.Normalization().double()(a)), net[0](features.Normalization().double()(b))
    assert torch.allclose(sl.target[0], losses.gram_matrix(fa))
    right = fb[0][:, :, 4:].reshape(64, -1)
    assert torch.allclose(sl.target[1], right @ right.T / (64 * right.shape[1]))
    # perturbing b leaves region 0's target as it was
    _, _, (sl2,) = features.build_style_model(net, content, [a, b + 0.1], {}, {"conv_1": 1.0}, regions=regs)
    assert torch.equal(sl.target[0], sl2.target[0]) and not torch.allclose(sl.target[1], sl2.target[1])


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("layers", [("conv_1", "relu_2", "conv_3"), ("relu_1", "pool_2", "relu_3")])
def test_the_fast_path_computes_the_masked_losses_and_gradients(layers, channels_last, monkeypatch):
    """The fused blocks' hand-written guided-Gram backward against autograd through the seed's graph (float64,
    oneDNN: only rounding differs), soft masks with a hard zero patch, a style map, odd sizes, erosion; in the
    CUDA path's channels_last layout too, evaluated twice (the second reuses the first's buffers)."""
    from stylize import fused
    monkeypatch.setattr(fused, "_nnpack", lambda x: False)
    if channels_last:
        monkeypatch.setattr(fused, "conv3x3", lambda x, w, b: torch.nn.functional.conv2d(
            x.contiguous(memory_format=torch.channels_last), w, b, padding=1))
    torch.manual_seed(3)
    net = tiny_net("relu_3")
    h, w = 23, 19
    content = torch.rand(1, 3, h, w, dtype=torch.float64)
    styles = [torch.rand(1, 3, h, w, dtype=torch.float64) for _ in range(2)]
    masks = torch.rand(2, 1, h, w, dtype=torch.float64)
    masks[0, :, :, :8] = 0  # region 0 skips the left columns: its Gram takes only its own pixels
    regs = stage_regions(masks, [0, 1], style_masks=[None, torch.rand(1, 1, h, w, dtype=torch.float64)],
                         weights=[1.0, 3.0], erode=1)
    layer_weights = {n: 1.0 + i for i, n in enumerate(layers)}
    plain, pcl, psl = features.build_style_model(net, content, styles, {"conv_2": 1.0}, layer_weights, regions=regs)
    model, cl, sl = features.build_style_model(net, content, styles, {"conv_2": 1.0}, layer_weights, targets=False,
                                               regions=regs)
    fast = fused.fuse(model, content, styles)
    assert any(isinstance(b, fused.ConvBlock) and any(isinstance(t, MaskedStyleLoss) for t in [*b.pre, *b.post])
               for b in fast)
    image = torch.rand(1, 3, h, w, dtype=torch.float64)
    out = []
    for m, taps in ((plain, [*pcl, *psl]), (fast, [*cl, *sl]), (fast, [*cl, *sl])):
        x = image.clone().requires_grad_()
        m(x)
        total = torch.stack([t.loss for t in taps])
        total.sum().backward()
        out.append((total.detach(), x.grad))
    for got, got_grad in out[1:]:
        assert torch.allclose(out[0][0], got, rtol=1e-9)
        assert torch.allclose(out[0][1], got_grad, rtol=1e-7, atol=1e-12 * out[0][1].abs().max())


def test_masked_runs_take_the_fast_path_on_the_torch_backend():
    net = tiny_net().float()
    content, style = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    cfg = build_config(overrides={"style_layers": ["conv_1"], "content_layers": ["conv_2"]})
    regs = stage_regions(halves(16, 16), [0, 0])
    objective = TorchBackend(torch.device("cpu")).objective(net, content, [style], cfg, regions=regs)
    assert isinstance(objective, FusedObjective) and isinstance(objective.style_losses[0], MaskedStyleLoss)
    exact = TorchBackend(torch.device("cpu")).objective(net, content, [style], build_config(
        overrides={"style_layers": ["conv_1"], "content_layers": ["conv_2"], "exact": True}), regions=regs)
    assert isinstance(exact, PlainObjective) and isinstance(exact.style_losses[0], MaskedStyleLoss)


# ---- the schedule and the files ----

@pytest.fixture
def files(tmp_path):
    content, _ = demo_pair()
    w, h = Image.open(content).size
    left = np.zeros((h, w), np.uint8)
    left[:, : w // 2] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(255 - left).save(tmp_path / "right.png")
    Image.fromarray(left[::4, ::4]).save(tmp_path / "small.png")  # same aspect, lower resolution
    Image.new("L", (w, h + h // 50), 255).save(tmp_path / "tall.png")  # 2 % off the content's aspect
    seg = np.zeros((h, w, 3), np.uint8)
    seg[:, : w // 2] = (255, 0, 0)
    seg[:, w // 2:] = (0, 0, 255)
    Image.fromarray(seg).save(tmp_path / "seg.png")
    for name, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        Image.new("RGB", (48, 48), colour).save(tmp_path / f"{name}.png")
    return tmp_path


def test_masks_survive_the_multi_scale_schedule(files):
    content_pil = Image.open(demo_pair()[0]).convert("RGB")
    regs = regions.load(content_pil, [f"{files}/small.png={files}/red.png", f"{files}/right.png={files}/blue.png:2"],
                        background_style=f"{files}/red.png")
    cfg = build_config(overrides={"scales": "32:5,64", "size": 96})
    stages = schedule.plan(cfg, content_pil.width, content_pil.height, features.layer("conv_5").index, True)
    assert [s.size for s in stages] == [32, 64, 96]
    for stage in stages:
        st = schedule.stage_regions(cfg, regs, stage, torch.device("cpu"))
        assert st.masks.shape == (3, 1, stage.height, stage.width)  # two regions and the background
        half = stage.width // 2
        assert st.masks[0, 0, :, : half - 1].min() == 1 and st.masks[0, 0, :, half + 1:].max() == 0
        assert st.masks[1, 0, :, half + 1:].min() == 1
        # the halves cover everything but where the two masks' resamplings meet (small.png is 1/4 size)
        assert st.masks[2, 0, :, : half - 2].max() == 0 and st.masks[2, 0, :, half + 2:].max() == 0
        assert st.style_of == [0, 1, 0] and st.weights == [1.0, 2.0, 1.0]


@pytest.mark.slow  # a real (tiny) run: 5-16 s on the loaded machine
def test_a_run_carries_the_masks_to_every_stage(files, monkeypatch):
    seen = []
    build = FusedObjective.build.__func__

    def spy(cls, net, content, styles, cfg, regions=None):
        seen.append((tuple(content.shape[-2:]), tuple(regions.masks.shape[-2:])))
        return build(cls, net, content, styles, cfg, regions=regions)

    monkeypatch.setattr(FusedObjective, "build", classmethod(spy))
    from stylize import stylize
    result = stylize(None, None, None, write=False, regions=[f"{files}/left.png={files}/red.png",
                     f"{files}/right.png={files}/blue.png"], weights="untrained", size=32, steps=2, scales="24:1,32")
    assert seen == [((24, 32), (24, 32)), ((32, 42), (32, 42))]
    assert result.config.style == [f"{files}/red.png", f"{files}/blue.png"]


@pytest.mark.slow  # two tiny real runs
def test_a_masked_run_whose_plan_tiles_evaluates_the_same_loss(files, monkeypatch):
    """Regions with the memory plan's tiles: the run's first loss is the whole-image run's (the exact tiled guided
    Grams: tests/test_tiled.py)."""
    from stylize import plan, stylize
    run = dict(regions=[f"{files}/left.png={files}/red.png", f"{files}/right.png={files}/blue.png:2"], write=False,
               weights="untrained", size=96, steps=3, scales="none", device="cpu")
    whole = stylize(None, None, None, **run)
    monkeypatch.setattr(plan, "whole_bytes", lambda *a: 2**60)  # as under a tiny max_memory: tiles
    tiled = stylize(None, None, None, **run)
    assert whole.plan["stages"][0]["mode"] == "whole" and tiled.plan["stages"][0]["tiles"] >= 2
    assert abs(tiled.history[0].total - whole.history[0].total) / whole.history[0].total < 1e-5


def test_seg_colours_become_masks(files):
    content_pil = Image.open(demo_pair()[0]).convert("RGB")
    regs = regions.load(content_pil, seg=f"{files}/seg.png",
                        seg_colors=regions.parse_seg_colors(f"#ff0000={files}/red.png,#0000ff={files}/blue.png"))
    by_files = regions.load(content_pil, [f"{files}/left.png={files}/red.png", f"{files}/right.png={files}/blue.png"])
    for m, n in zip(regs.masks, by_files.masks):
        assert np.array_equal(np.asarray(m), np.asarray(n))


def test_scale_control_takes_coarse_and_fine_targets_from_their_images():
    fine, coarse = features.split_taps({n: 1.0 for n in ("conv_5", "conv_1", "conv_3", "conv_2", "conv_4")})
    assert (fine, coarse) == (["conv_1", "conv_2"], ["conv_3", "conv_4", "conv_5"])
    net = tiny_net("conv_3")
    content = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    a, b = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    layers = {"conv_1": 1.0, "conv_3": 1.0}
    _, _, (s1, s3) = features.build_style_model(net, content, [a, b], {}, layers, scale_split=True)
    _, _, (a1, a3) = features.build_style_model(net, content, [a], {}, layers)
    _, _, (b1, b3) = features.build_style_model(net, content, [b], {}, layers)
    assert torch.allclose(s1.target, b1.target) and torch.allclose(s3.target, a3.target)


# ---- the command line ----

def run_cli(args, tmp_path):
    result = CliRunner().invoke(app, ["run", *args, "--size", "32", "--steps", "1", "--weights", "untrained",
                                      "-o", str(tmp_path / "out.png")])
    return result.exit_code, result.output


@pytest.mark.parametrize("args, message", [
    (["--region", "missing.png={d}/red.png"], "region mask: image not found: missing.png"),
    (["--region", "{d}/tall.png={d}/red.png"], "must have its image's aspect"),
    (["--region", "{d}/left.png={d}/red.png:heavy"], "the region weight 'heavy' is not a number"),
    (["--seg", "{d}/seg.png", "--seg-colors", "#00ff00={d}/red.png"], "colour #00ff00 does not occur in the seg map"),
    (["--region", "{d}/left.png={d}/red.png", "--device", "dlp-sim"], "dlp-sim has no masked (guided) Gram kernel"),
    (["--background-style", "{d}/red.png"], "background_style: needs regions"),
    (["--style-coarse", "{d}/red.png"], "needs both --style-coarse and --style-fine"),
])
def test_bad_region_input_is_one_line_and_exit_2(files, args, message):
    code, output = run_cli([a.format(d=files) for a in args], files)
    assert code == 2, output
    assert message in " ".join(output.split()) and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1 and output.startswith("error:")
    assert not (files / "out.png").exists()


def test_styles_given_twice_are_refused(files):
    content = demo_pair()[0]
    region = f"{files}/left.png={files}/red.png"
    code, output = run_cli([str(content), str(files / "blue.png"), "--region", region], files)
    assert code == 2 and "leave out the STYLE arguments" in output


def test_parse_region():
    assert regions.parse_region("m.png=s.jpg@map.png:2.5") == regions.RegionSpec("m.png", "s.jpg", "map.png", 2.5)
    assert regions.parse_region("m.png=s.jpg") == regions.RegionSpec("m.png", "s.jpg")
    with pytest.raises(StylizeError, match="expected MASK=STYLE"):
        regions.parse_region("m.png")


@pytest.mark.slow  # 5-12 s on the loaded 2-core machine
def test_each_half_takes_its_own_styles_colours(tmp_path):
    """scripts/regions_example.py at 48 px: each half's colour histogram is closer to its own style's than to the
    other's (at 128 px and 150 steps: 0.852 vs 0.995 and 0.824 vs 1.000, docs/regions.md)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))
    import regions_example

    *_, table, before = regions_example.run(tmp_path, 48, 20)
    for half, (own, other) in table.items():
        assert own < other - 0.03, (half, own, other)
        assert own < before[half][0] - 0.03  # and closer than the content was


def test_style_palette_recolours_region_by_region(files):
    from stylize import colors, images
    content = Image.open(demo_pair()[0]).convert("RGB").resize((64, 48))
    red, blue = Image.open(files / "red.png"), Image.open(files / "blue.png")
    left = Image.open(files / "left.png").resize((64, 48))
    regs = regions.Regions([left], [0], [None], [1.0], ["red.png"])
    got = images.to_tensor(regions.palette(content, [red, blue], regs))
    x = images.to_tensor(content)
    want_left = colors.style_palette(x, [images.to_tensor(red)])
    assert (got[..., :31] - want_left[..., :31]).abs().max() <= 1 / 255  # the left half: red's palette
    assert torch.equal(got[..., 33:], x[..., 33:])  # no mask, no background style: the content's colours


def test_a_saved_config_with_its_region_styles_is_accepted(files):
    """run.json and checkpoints record the region styles as `style`: resuming must not read them as a conflict."""
    from stylize import transfer
    content = Image.open(demo_pair()[0]).convert("RGB")
    cfg = build_config(overrides={"regions": [f"{files}/left.png={files}/./red.png"], "style": [f"{files}/red.png"]})
    masks, styles = transfer._regions(cfg, content)
    assert styles == [f"{files}/./red.png"] and masks.style_of == [0]
    with pytest.raises(StylizeError, match="leave out the STYLE arguments"):
        transfer._regions(build_config(overrides={"regions": [f"{files}/left.png={files}/red.png"],
                                                  "style": [f"{files}/blue.png"]}), content)


def test_style_maps_guide_the_targets_and_are_checked(files):
    content = Image.open(demo_pair()[0]).convert("RGB")
    coded = np.zeros((48, 48, 3), np.uint8)
    coded[:, 24:] = (255, 0, 0)  # red codes the right half of the style image
    Image.fromarray(coded).save(files / "red_map.png")
    regs = regions.load(content, seg=f"{files}/seg.png", seg_colors=[f"#ff0000={files}/red.png@{files}/red_map.png"])
    assert np.asarray(regs.style_maps[0])[:, 24:].min() == 255 and np.asarray(regs.style_maps[0])[:, :24].max() == 0
    with pytest.raises(StylizeError, match="colour #0000ff does not occur in the style map"):
        regions.load(content, seg=f"{files}/seg.png", seg_colors=[f"#0000ff={files}/red.png@{files}/red_map.png"])
    with pytest.raises(StylizeError, match="style map .* must have its image's aspect"):
        regions.load(content, [f"{files}/left.png={files}/red.png@{files}/left.png"])  # 4:3 map on a square style


@pytest.mark.gpu
def test_masked_fast_path_on_cuda_matches_the_plain_graph_on_cpu():
    """channels_last cuDNN convs (TF32 where the GPU has it), index_add_ on CUDA, against autograd on the CPU."""
    from stylize import fused
    torch.manual_seed(4)
    net = tiny_net("relu_3").float()
    h, w = 40, 36
    content, image = torch.rand(1, 3, h, w), torch.rand(1, 3, h, w)
    styles = [torch.rand(1, 3, h, w), torch.rand(1, 3, h, w)]
    masks = halves(h, w)
    layers = {"conv_1": 1.0, "relu_2": 1.0, "relu_3": 1.0}
    out = []
    for device in ("cpu", "cuda"):
        to = lambda t: t.to(device)  # noqa: E731
        regs = stage_regions(to(masks), [0, 1])
        model, cl, sl = features.build_style_model(to(net), to(content), [to(s) for s in styles], {"conv_2": 1.0},
                                                   layers, targets=device == "cpu", regions=regs)
        if device == "cuda":
            model = fused.fuse(model, to(content), [to(s) for s in styles])
        x = to(image).requires_grad_()
        model(x)
        total = torch.stack([t.loss for t in [*cl, *sl]])
        total.sum().backward()
        out.append((total.detach().cpu(), x.grad.cpu()))
    torch.testing.assert_close(out[1][0], out[0][0], rtol=1e-2, atol=0)
    assert ((out[1][1] - out[0][1]).norm() / out[0][1].norm()).item() < 5e-2


def test_the_mask_files_are_inputs_of_a_checkpoint():
    assert regions.input_files(["a.png=s.jpg@sm.png:2", "b.png=t.jpg"], "seg.png", ["#ff0000=u.jpg@um.png"]) == [
        "a.png", "b.png", "seg.png", "sm.png", "um.png"]


def test_with_paths_rewrites_the_files_of_an_item():
    assert regions.with_paths("a.png=s.jpg@m.png:2", str.upper) == "A.PNG=S.JPG@M.PNG:2.0"
    assert regions.with_paths("#ff0000=s.jpg", str.upper, "seg_colors") == "#ff0000=S.JPG"
