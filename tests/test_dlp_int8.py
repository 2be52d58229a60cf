"""dlp-sim's int8 mode is integer arithmetic: int8/int16 codes, an int32 accumulator with saturation, power-of-two
requantization, per-channel weight scales. The kernels are held bit-exact to a plain int64 reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import stylize.dlp as dlp
from stylize.dlp import cost, numerics, spec as specs
from stylize.dlp.kernels import conv

TINY = specs.from_dict(dict(name="tiny", cores=1, clock_ghz=1, nram_kb=4, wram_kb=4, dram_gbps=1, dma_setup_ns=0,
                            mac_per_cycle=dict(fp32=1, fp16=2, int8=4), vector_per_cycle=dict(fp32=1, fp16=2, int8=2)))
I32 = 2**31 - 1


@pytest.fixture(autouse=True)
def _int8_device():
    with dlp.session(TINY, "int8"):
        yield


def ref_conv_int(x: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """Plain integer convolution: int64 products summed over (c, ky, kx), saturated to int32."""
    xp = F.pad(x.long(), (padding,) * 4)
    n, _, h, wd = xp.shape
    cout, _, kh, kw = w.shape
    out = torch.zeros(n, cout, h - kh + 1, wd - kw + 1, dtype=torch.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, :, ky:ky + out.shape[2], kx:kx + out.shape[3]]
            out += torch.einsum("oc,nchw->nohw", w[:, :, ky, kx].long(), patch)
    return out.clamp(-I32 - 1, I32).int()


def codes(shape, kind, gen, full=False):
    q = numerics.QMAX[kind]
    if full:
        return torch.full(shape, q, dtype=numerics.DTYPES[kind])
    return torch.randint(-q - 1, q + 1, shape, generator=gen).to(numerics.DTYPES[kind])


@pytest.mark.parametrize("kind", ["int8", "int16"])
@pytest.mark.parametrize("shape", [(1, 5, 37, 23, 7, 3, 1), (2, 70, 13, 9, 5, 3, 1), (1, 6, 9, 10, 5, 1, 0)])
def test_integer_accumulator_is_bit_exact(shape, kind):
    n, cin, h, w, cout, k, pad = shape
    gen = torch.Generator().manual_seed(0)
    x, wt = codes((n, cin, h, w), kind, gen), codes((cout, cin, k, k), "int8", gen)
    p = conv.plan(cin, cout, k, k, h + 2 * pad - k + 1, w + 2 * pad - k + 1, TINY.nram_bytes, TINY.wram_bytes, 1, 1)
    assert p.th < h  # really tiled (halos, remainders) under the tiny spec
    acc = conv.int_accumulate(x, wt, (pad, pad), p)
    assert acc.dtype == torch.int32 and torch.equal(acc, ref_conv_int(x, wt, pad))


def test_accumulator_saturates_at_int32():
    x = codes((1, 64, 4, 4), "int16", None, full=True)  # 576 products of 32767 · 127 = 2.4e9 > 2^31 - 1
    wt = codes((2, 64, 3, 3), "int8", None, full=True)
    p = conv.plan(64, 2, 3, 3, 4, 4, TINY.nram_bytes, TINY.wram_bytes, 2, 1)
    acc = conv.int_accumulate(x, wt, (1, 1), p)
    ref = ref_conv_int(x, wt, 1)
    assert torch.equal(acc, ref) and int(acc.max()) == I32 and int(acc.min()) > 0  # the centre saturated, corners not


def test_conv_kernel_is_the_integer_pipeline():
    """F.conv2d on the device in int8 mode = quantize (per-tensor activations, per-channel weights) -> integer
    accumulator -> requantize with the scales, bias, ReLU -> store as int8 with the output's own position."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 6, 11, 9, generator=gen) * 3
    w = torch.randn(4, 6, 3, 3, generator=gen) * torch.tensor([1.0, 0.01, 0.3, 5.0]).view(4, 1, 1, 1)
    b = torch.randn(4, generator=gen)
    qx, qw = numerics.quantize(x, "int8"), numerics.quantize(w, "int8", axis=0)
    assert qx.codes.dtype == torch.int8 and qw.scale.shape == (4, 1, 1, 1) and qw.scale.unique().numel() == 4
    acc = ref_conv_int(qx.codes, qw.codes, 1)
    y = (acc.double() * (qx.scale * qw.scale.view(1, 4, 1, 1))).float() + b.view(1, 4, 1, 1)
    expected = numerics.quantize(y.relu(), "int8").values()
    got = torch.ops.dlp.conv2d_relu(x.to("dlp"), w.to("dlp"), b.to("dlp"), 1).cpu()
    assert torch.equal(got, expected)
    # Per-channel weight scales keep the small channel (x0.01): each channel within half its own step.
    assert ((qw.values() - w).abs() <= qw.scale.float() / 2).all()


def test_input_gradient_is_int16_with_folded_weight_scales():
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(5, 3, 3, 3, generator=gen) * torch.tensor([1.0, 0.05, 2.0, 0.3, 1.0]).view(5, 1, 1, 1)
    g = torch.randn(1, 5, 8, 7, generator=gen)
    qw = numerics.quantize(w, "int8", axis=0)
    qg = numerics.quantize(g * qw.scale.view(1, 5, 1, 1).float(), "int16")
    acc = ref_conv_int(qg.codes, qw.codes.flip(2, 3).transpose(0, 1), 2)
    expected = numerics.quantize((acc.double() * qg.scale).float(), "int16").values()
    got = conv.conv2d_input_grad(g, w, (0, 0))
    assert torch.equal(got, expected)
    exact = torch.nn.grad.conv2d_input(g.shape[:1] + (3, 10, 9), w, g)
    assert float((got - exact).abs().max() / exact.abs().max()) < 0.02  # int8 weights, int16 gradients


def test_gram_and_matmul_are_bit_exact():
    gen = torch.Generator().manual_seed(3)
    feats = torch.rand(1, 35, 17, 13, generator=gen)
    q = numerics.quantize(feats.reshape(35, -1), "int8")
    expected = ((q.codes.long() @ q.codes.long().t()).double() * q.scale**2).float() / feats.numel()
    assert torch.equal(torch.ops.dlp.gram(feats.to("dlp")).cpu(), expected)
    a, b = torch.randn(9, 300, generator=gen), torch.randn(300, 4, generator=gen)
    qa, qb = numerics.quantize(a, "int8"), numerics.quantize(b, "int8")
    expected = ((qa.codes.long() @ qb.codes.long()).double() * (qa.scale * qb.scale)).float()
    assert torch.equal(torch.mm(a.to("dlp"), b.to("dlp")).cpu(), expected)


def test_bytes_follow_the_stored_dtypes_and_gradients_run_at_the_int16_rate():
    tb = specs.load("textbook")
    n, cin, cout, h, w = 1, 64, 64, 32, 32
    p = conv.plan(cin, cout, 3, 3, h, w, tb.nram_bytes, tb.wram_bytes, 1, 1)
    fwd = conv.tile_groups(n, cin, cout, 3, 3, h, w, p, "int8")
    assert sum(g.count * g.bytes_out for g in fwd) == cout * h * w * 1  # int8 activations out
    pg = conv.plan(cin, cout, 3, 3, h, w, tb.nram_bytes, tb.wram_bytes, 2, 1)
    bwd = conv.tile_groups(n, cin, cout, 3, 3, h, w, pg, "int8", in_role="gradient", out_role="gradient")
    assert sum(g.count * g.bytes_out for g in bwd) == cout * h * w * 2  # int16 gradients out
    halo = sum(g.count * g.bytes_in for g in bwd if g.macs)
    assert halo >= cin * h * w * 2  # int16 gradients in (plus halos and weights)
    fast, slow = cost.estimate(bwd, tb, "int8"), cost.estimate(bwd, tb, "int8", "int16")
    assert slow.compute_s - fast.compute_s == pytest.approx(slow.macs / 512e9 - slow.macs / 1024e9)
    assert tb.mac_rate("int16") == 512
    with dlp.session("textbook", "int8") as profile:
        x = torch.rand(1, cin, h, w).to("dlp").requires_grad_(True)
        y = F.conv2d(x, torch.randn(cout, cin, 3, 3).to("dlp"), padding=1)
        y.backward(torch.randn(y.shape).to("dlp"))
        ig = profile.ops["conv2d.input_grad"]
        fw = profile.ops["conv2d"]
        assert ig.compute_s == pytest.approx(ig.macs / 512e9 + ig.vector_ops / 128e9)  # int16 x int8 MACs
        assert fw.compute_s == pytest.approx(fw.macs / 1024e9 + fw.vector_ops / 128e9)  # int8 x int8 MACs
        assert 0.5 < profile.utilization(ig) <= 1 and 0.5 < profile.utilization(fw) <= 1  # each at its own rate
