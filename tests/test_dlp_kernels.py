"""dlp-sim: the device API, every kernel against torch on the CPU, the fused ops' gradients, numerics, cost model.

Kernels run under a tiny spec (4 KB buffers) as well as the textbook one, at odd sizes, so that tiles have
halos, remainders and input-channel blocks: a tiling bug shows as a wrong value.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import stylize.dlp as dlp
from stylize.dlp import cost, numerics, spec as specs
from stylize.dlp.kernels import conv, matmul
from stylize.errors import StylizeError

TINY = specs.from_dict(dict(name="tiny", cores=1, clock_ghz=1, nram_kb=4, wram_kb=4, dram_gbps=1, dma_setup_ns=0,
                            mac_per_cycle=dict(fp32=1, fp16=2, int8=4), vector_per_cycle=dict(fp32=1, fp16=2, int8=2)))
SPECS = [TINY, "textbook"]


@pytest.fixture(autouse=True)
def _fresh_device():
    with dlp.session():  # each test configures what it needs; the previous state comes back
        yield


def dev(x: torch.Tensor, requires_grad: bool = False) -> torch.Tensor:
    return x.detach().to("dlp").requires_grad_(requires_grad)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    a, b = a.detach().cpu(), b.detach().cpu()
    assert a.shape == b.shape
    err = float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
    assert err <= tol, err


def test_device_api():
    x = torch.randn(2, 3)
    y = x.to("dlp")
    assert torch.device("dlp").type == "dlp" and y.device == torch.device("dlp", 0)
    assert y.is_dlp and not x.is_dlp and x.dlp().is_dlp and x.to(torch.device("dlp")).is_dlp
    assert type(y).__name__ == "DLPTensor" and torch.equal(y.cpu(), x) and y.cpu().device.type == "cpu"
    assert "device='dlp:0'" in repr(y)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).to("dlp")
    assert all(p.is_dlp for p in net.parameters())
    out = net(torch.rand(1, 3, 9, 7).to("dlp"))
    assert out.is_dlp and out.shape == (1, 4, 9, 7)
    with pytest.raises(RuntimeError, match="expected all tensors to be on dlp"):
        y + torch.randn(2, 3)  # like cuda: no silent mixing of devices


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("shape", [(1, 5, 37, 23, 7, 3, 1), (2, 3, 11, 13, 4, 1, 0), (1, 6, 9, 10, 5, 3, 0),
                                   (1, 70, 13, 9, 5, 3, 1)])
def test_conv_forward_and_input_grad_match_torch(spec, shape):
    n, cin, h, w, cout, k, pad = shape
    dlp.configure(spec)
    gen = torch.Generator().manual_seed(0)
    x, wt, b = torch.randn(n, cin, h, w, generator=gen), torch.randn(cout, cin, k, k, generator=gen), torch.randn(cout, generator=gen)
    xr = x.clone().requires_grad_(True)
    ref = F.conv2d(xr, wt, b, padding=pad)
    g = torch.randn(ref.shape, generator=gen)
    ref.backward(g)
    xd = dev(x, True)
    out = F.conv2d(xd, dev(wt), dev(b), padding=pad)
    out.backward(dev(g))
    close(out, ref)
    close(xd.grad, xr.grad)
    profile = dlp.current().profile
    assert profile.ops["conv2d"].calls == 1 and profile.ops["conv2d.input_grad"].calls == 1
    assert dict(profile.fallbacks) == {}


def test_fp32_kernels_are_as_accurate_as_the_cpu():
    """Against float64: the tiled conv and the blocked Gram err no more than torch's own fp32 kernels (x2)."""
    dlp.configure("textbook")
    gen = torch.Generator().manual_seed(5)
    x, w = torch.rand(1, 32, 40, 44, generator=gen), torch.randn(48, 32, 3, 3, generator=gen) * 0.05

    def err(a, exact):
        return float((a.cpu().double() - exact).norm() / exact.norm())

    exact = F.conv2d(x.double(), w.double(), padding=1)
    assert err(F.conv2d(dev(x), dev(w), padding=1), exact) <= 2 * err(F.conv2d(x, w, padding=1), exact) + 1e-9
    f = x.reshape(32, -1)
    exact = f.double() @ f.double().t() / x.numel()
    assert err(torch.ops.dlp.gram(dev(x)), exact) <= 2 * err(f @ f.t() / x.numel(), exact) + 1e-9


def test_tiny_spec_really_tiles():
    """The conv test above is only worth something if the tiny spec cuts the work into many tiles with
    remainders and input-channel blocks."""
    p = conv.plan(5, 7, 3, 3, 37, 23, TINY.nram_bytes, TINY.wram_bytes, 4, 4)
    assert 37 % p.th and 23 % p.tw and 1 < p.th < 37
    p = conv.plan(70, 5, 3, 3, 13, 9, TINY.nram_bytes, TINY.wram_bytes, 4, 4)
    assert 70 % p.ci_blk and p.ci_blk < 70 and 13 % p.th
    m = matmul.plan(35, 35, 300, TINY.nram_bytes, TINY.wram_bytes, 4, 4)
    assert 35 % m.bm and 300 % m.bk and m.bk < 300


def test_fused_conv_relu_and_fusion_pass():
    dlp.configure(TINY)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(6, 4, 3, padding=1),
                              torch.nn.Identity(), torch.nn.ReLU())
    x = torch.rand(1, 3, 15, 11)
    ref = net(x)
    on_device = net.to("dlp")
    assert dlp.fuse_conv_relu(on_device) == 1  # the second pair is separated: its conv output is observed
    close(on_device(x.to("dlp")), ref)
    assert dlp.current().profile.ops["conv2d+relu"].calls == 1


def test_matmul_gram_and_gram_mse_match_torch():
    dlp.configure(TINY)
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(35, 300, generator=gen), torch.randn(300, 19, generator=gen)
    close(torch.mm(dev(a), dev(b)), a @ b)
    feats = torch.randn(1, 35, 17, 13, generator=gen)
    target = torch.randn(35, 35, generator=gen)
    f = feats.reshape(35, -1)
    gram_ref = f @ f.t() / feats.numel()
    close(torch.ops.dlp.gram(dev(feats)), gram_ref)
    fr = feats.clone().requires_grad_(True)
    loss_ref = F.mse_loss((fr.reshape(35, -1) @ fr.reshape(35, -1).t()) / feats.numel(), target)
    loss_ref.backward()
    fd = dev(feats, True)
    loss, residual = torch.ops.dlp.gram_mse(fd, dev(target))
    loss.backward()
    close(loss, loss_ref)
    close(residual, gram_ref - target)
    close(fd.grad, fr.grad)


def test_fused_ops_gradcheck_float64_on_device():
    dlp.configure(TINY)
    gen = torch.Generator().manual_seed(2)
    f = dev(torch.randn(1, 3, 5, 7, dtype=torch.float64, generator=gen), True)
    t = dev(torch.randn(3, 3, dtype=torch.float64, generator=gen), True)
    assert torch.autograd.gradcheck(torch.ops.dlp.gram, (f,))
    assert torch.autograd.gradcheck(lambda x, y: torch.ops.dlp.gram_mse(x, y)[0], (f, t))
    x = dev(torch.randn(1, 3, 6, 5, dtype=torch.float64, generator=gen), True)
    w = dev(torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=gen))
    b = dev(torch.randn(4, dtype=torch.float64, generator=gen))
    assert torch.autograd.gradcheck(lambda v: torch.ops.dlp.conv2d_relu(v, w, b, 1), (x,))


def test_custom_ops_on_host_tensors_match_their_references():
    from stylize import losses

    feats = torch.rand(1, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    target = losses.gram_matrix(torch.rand(1, 4, 6, 5, dtype=torch.float64))
    close(torch.ops.dlp.gram(feats), losses.gram_matrix(feats))
    close(torch.ops.dlp.gram_mse(feats, target)[0], losses.style_loss(feats, target))
    assert torch.autograd.gradcheck(lambda x: torch.ops.dlp.gram_mse(x, target)[0], (feats,))


@pytest.mark.parametrize("spec", SPECS)
def test_pool_elementwise_and_reductions_match_torch(spec):
    dlp.configure(spec)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 5, 12, 10, generator=gen)
    for op in (lambda v: F.max_pool2d(v, 2, 2), lambda v: F.avg_pool2d(v, 2, 2), torch.relu,
               lambda v: (v - 0.3) / 1.7, lambda v: v.clamp(0, 1) * 2):
        xr, xd = x.clone().requires_grad_(True), dev(x, True)
        ref, out = op(xr), op(xd)
        g = torch.randn(ref.shape, generator=gen)
        ref.backward(g)
        out.backward(dev(g))
        close(out, ref)
        close(xd.grad, xr.grad)
    big = torch.randn(40_001, generator=gen)  # several reduction tiles and a remainder under the tiny spec
    other = torch.randn(40_001, generator=gen)
    close(dev(big).sum(), big.sum())
    close(dev(big).mean(), big.mean())
    close(torch.dot(dev(big), dev(other)), torch.dot(big, other))
    close(F.mse_loss(dev(big), dev(other)), F.mse_loss(big, other))
    assert dict(dlp.current().profile.fallbacks) == {}


def test_unsupported_op_is_a_counted_host_fallback():
    profile = dlp.configure("textbook")
    x = torch.arange(6.0)
    out = torch.cumsum(x.to("dlp"), 0)
    assert out.is_dlp and torch.equal(out.cpu(), torch.cumsum(x, 0))
    assert profile.fallbacks == {"aten.cumsum.default": 1}
    assert "host fallbacks: 1" in profile.table() and profile.as_dict()["totals"]["fallbacks"] == 1


def _conv_error(mode: str):
    gen = torch.Generator().manual_seed(4)
    x, w = torch.randn(1, 8, 13, 11, generator=gen), torch.randn(6, 8, 3, 3, generator=gen)
    dlp.configure("textbook", mode)
    return x, w, F.conv2d(dev(x), dev(w), padding=1).cpu(), F.conv2d(x, w, padding=1)


def test_fp16_within_its_bound():
    x, w, out, ref = _conv_error("fp16")
    u = 2.0**-11  # fp16 unit roundoff: operands rounded once, products exact, fp32 sums, result rounded once
    k = 8 * 9
    bound = k * float((x.abs().max() * w.abs().max())) * (2 * u + u * u) + float(ref.abs().max()) * u + 1e-4
    err = float((out - ref).abs().max())
    assert 0 < err <= bound
    assert torch.equal(out, out.half().float())  # stored in half


def test_int8_within_its_bound_and_int16_gradients():
    x, w, out, ref = _conv_error("int8")
    dx, dw = 2.0 ** numerics.position(x) / 2, 2.0 ** numerics.position(w) / 2  # half a quantization step
    k = 8 * 9
    bound = k * (dx * float(w.abs().max()) + dw * float(x.abs().max()) + dx * dw) + 1e-4
    err = float((out - ref).abs().max())
    assert 0 < err <= bound
    g = torch.randn(100) * 3
    assert float((numerics.operand(g, "int8", "gradient") - g).abs().max()) <= 2.0 ** numerics.position(g, "int16") / 2
    assert numerics.position(g, "int16") < numerics.position(g, "int8")  # int16 keeps 8 more bits


def test_fixed_point_position_is_the_smallest_that_holds_the_max():
    x = torch.tensor([0.5, -3.0, 1.25])
    pos = numerics.position(x)
    assert 127 * 2.0**pos >= 3.0 > 127 * 2.0 ** (pos - 1)
    q = numerics.fixed_point(x)
    assert torch.equal(q / 2.0**pos, torch.round(q / 2.0**pos))  # integer codes


def test_cost_model_closed_forms():
    tb = specs.load("textbook")
    # MACs of a conv equal N·Cout·Ho·Wo·Cin·kh·kw, whatever the tiling.
    n, cin, cout, h, w = 1, 64, 128, 37, 23
    p = conv.plan(cin, cout, 3, 3, h, w, tb.nram_bytes, tb.wram_bytes, 4, 4)
    c = cost.estimate(conv.tile_groups(n, cin, cout, 3, 3, h, w, p, "fp32"), tb, "fp32")
    assert c.macs == n * cout * h * w * cin * 9
    # A 1x1 conv with few channels moves more bytes than it computes; a 3x3 with many is compute-bound.
    p1 = conv.plan(8, 8, 1, 1, 64, 64, tb.nram_bytes, tb.wram_bytes, 4, 4)
    assert cost.estimate(conv.tile_groups(1, 8, 8, 1, 1, 64, 64, p1, "fp32"), tb, "fp32").bound == "memory"
    p3 = conv.plan(256, 256, 3, 3, 32, 32, tb.nram_bytes, tb.wram_bytes, 4, 4)
    assert cost.estimate(conv.tile_groups(1, 256, 256, 3, 3, 32, 32, p3, "fp32"), tb, "fp32").bound == "compute"
    # The roofline itself on one group: 3 tiles of 2560 MACs and 1 KB each, 1 core, 256 MAC/cycle at 1 GHz, 64 GB/s.
    g = cost.TileGroup(3, bytes_in=768, bytes_out=256, macs=2560, dmas=2)
    compute, dma = 2560 / 256e9, 1024 / 64e9 + 2 * 100e-9
    got = cost.estimate([g], tb, "fp32")
    assert math.isclose(got.time_s, 2e-6 + 3 * max(compute, dma) + min(compute, dma))  # 2 us to launch the kernel
    assert got.bound == "memory" and got.dram_bytes == 3 * 1024 and got.tiles == 3  # 10 ns compute < 216 ns DMA
    # 16 cores share the DRAM bandwidth.
    ml = specs.load("mlu270")
    g16 = cost.TileGroup(16, bytes_in=1000, dmas=1)
    assert math.isclose(cost.estimate([g16], ml, "fp32").dma_s, 1000 / (102e9 / 16) + 128e-9)


def test_spec_errors_are_one_line(tmp_path):
    with pytest.raises(StylizeError, match="Did you mean 'textbook'"):
        specs.load("textbok")
    bad = tmp_path / "s.yaml"
    bad.write_text("name: x\ncores: 1\n")
    with pytest.raises(StylizeError, match="missing clock_ghz"):
        specs.load(bad)
    good = specs.load("textbook").__dict__ | {"nram_kb": -1}
    with pytest.raises(StylizeError, match="nram_kb: expected a positive number"):
        specs.from_dict(good)
    assert specs.load("mlu270").cores == 16 and specs.load("textbook").nram_kb == 128


def test_fp16_gradients_are_scaled_not_flushed():
    """A gradient of ~1e-7 (the content loss's near a content init) is below fp16's smallest subnormal: stored
    plainly in half it vanishes; with its per-tensor power-of-two scale it keeps fp16's relative precision."""
    g = torch.randn(1, 4, 6, 5, generator=torch.Generator().manual_seed(6)) * 1e-7
    assert float(numerics.half(g).abs().max()) < 3e-7 and float((numerics.half(g) - g).abs().max() / g.abs().max()) > 0.05
    scaled = numerics.half_scaled(g)
    assert float((scaled - g).abs().max() / g.abs().max()) <= 2.0**-11
    assert torch.equal(scaled, numerics.half_scaled(scaled))  # representable: storing again changes nothing
    dlp.configure("textbook", "fp16")
    w = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(7))
    got = conv.conv2d_input_grad(g, w, (1, 1))
    exact = torch.nn.grad.conv2d_input((1, 3, 6, 5), w, g, padding=1)
    assert float((got - exact).abs().max() / exact.abs().max()) < 5e-3
