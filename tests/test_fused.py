"""The fused fast path must compute the seed's losses and gradients: held to the plain model built by
``features.build_style_model`` (autograd through the seed's graph), on odd sizes and every kind of tap."""

import pytest
import torch

from stylize import features, fused
from stylize.losses import ContentLoss

TAPS = {
    "seed": (["conv_4"], ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"]),
    "gatys": (["conv4_2"], ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]),
    "relu taps": (["relu2_2"], ["relu1_1", "relu2_1", "relu3_1"]),
    "conv and relu of one layer, and a pool": (["relu_2", "conv_2"], ["conv_1", "relu_1", "pool_2", "relu_3"]),
}


def _models(taps, h=37, w=29, seed=0, dtype=torch.float32, device="cpu"):
    content_layers, style_layers = ({n: 1.0 + i for i, n in enumerate(names)} for names in taps)
    gen = torch.Generator().manual_seed(seed)
    content, style = torch.rand(2, 1, 3, h, w, generator=gen, dtype=dtype).to(device)
    net = features.init_untrained(features.vgg19_features(features.last_tap(content_layers, style_layers)))
    model, cl, sl = features.build_style_model(net.to(dtype).to(device), content, style, content_layers, style_layers)
    image = torch.rand(1, 3, h, w, generator=gen, dtype=dtype).to(device)
    return model, [*cl, *sl], image


def _losses_and_grad(model, taps, image):
    image = image.clone().requires_grad_(True)
    model(image)
    losses = [t.loss for t in taps]
    torch.stack(losses).sum().backward()
    return torch.stack(losses).detach(), image.grad


@pytest.mark.parametrize("taps", TAPS.values(), ids=TAPS.keys())
def test_fused_algebra_equals_autograd(taps, monkeypatch):
    """Without Winograd, only the fused algebra (and oneDNN's channels_last rounding) differs: float rounding."""
    monkeypatch.setattr(fused, "_nnpack", lambda x: False)
    model, loss_modules, image = _models(taps)
    want, want_grad = _losses_and_grad(model, loss_modules, image)
    got, got_grad = _losses_and_grad(fused.fuse(model), loss_modules, image)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    assert ((got_grad - want_grad).norm() / want_grad.norm()).item() < 1e-5


@pytest.mark.parametrize("taps", TAPS.values(), ids=TAPS.keys())
def test_channels_last_blocks_equal_autograd(taps, monkeypatch):
    """The CUDA path's layout on the CPU: channels_last convs, so the blocks' buffers, pools and Gram products
    all see channels_last tensors, twice (the second evaluation writes into the first's buffers)."""
    monkeypatch.setattr(fused, "conv3x3", lambda x, w, b: torch.nn.functional.conv2d(
        x.contiguous(memory_format=torch.channels_last), w, b, padding=1))
    model, loss_modules, image = _models(taps)
    want, want_grad = _losses_and_grad(model, loss_modules, image)
    fast = fused.fuse(model)
    for _ in range(2):
        got, got_grad = _losses_and_grad(fast, loss_modules, image)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
        assert ((got_grad - want_grad).norm() / want_grad.norm()).item() < 1e-5


@pytest.mark.parametrize("taps", TAPS.values(), ids=TAPS.keys())
def test_fast_path_matches_the_seed_graph(taps):
    """With NNPACK's Winograd conv (where the build has it): losses within 1e-4 and the gradient within 1 %.

    Winograd's ~1e-5 error per conv grows through 13 layers of backward to ~0.4 % of the image gradient
    (gatys); TF32, which PyTorch enables for convs on CUDA by default, perturbs gradients as much."""
    model, loss_modules, image = _models(taps, h=48, w=64)
    want, want_grad = _losses_and_grad(model, loss_modules, image)
    got, got_grad = _losses_and_grad(fused.fuse(model), loss_modules, image)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=0)
    assert ((got_grad - want_grad).norm() / want_grad.norm()).item() < 1e-2


def test_fused_block_gradcheck():
    """Double precision gradcheck of one block with taps before and after its ReLU."""
    model, loss_modules, image = _models((["conv_2"], ["conv_1", "relu_1", "relu_2"]), h=9, w=7, dtype=torch.float64)
    fast = fused.fuse(model)

    def total(x):
        fast(x)
        return torch.stack([t.loss for t in loss_modules]).sum()

    assert torch.autograd.gradcheck(total, (image.requires_grad_(True),), eps=1e-6, atol=1e-5)


def test_fuse_keeps_the_seed_structure():
    model, loss_modules, _ = _models(TAPS["conv and relu of one layer, and a pool"])
    fast = fused.fuse(model)
    assert [type(m).__name__ for m in fast] == ["Normalization", "ConvBlock", "ConvBlock", "MaxPool2d",
                                                "StyleLoss", "ConvBlock"]
    block1, block2 = fast.conv_1, fast.conv_2
    assert list(block1.pre) == [loss_modules[2]] and list(block1.post) == [loss_modules[3]] and block1.relu
    assert [type(t) for t in block2.pre] == [ContentLoss] and [type(t) for t in block2.post] == [ContentLoss]
    assert fast.conv_3.relu and list(fast.conv_3.post) == [loss_modules[5]] and len(fast) == 6  # cut after its loss


@pytest.mark.gpu
def test_fused_on_cuda_matches_the_seed_graph_on_cpu():
    """channels_last cuDNN convs (TF32 where the GPU has it) against the plain graph on the CPU."""
    model, loss_modules, image = _models(TAPS["gatys"], h=64, w=48)
    want, want_grad = _losses_and_grad(model, loss_modules, image)
    model, loss_modules, image = _models(TAPS["gatys"], h=64, w=48, device="cuda")
    got, got_grad = _losses_and_grad(fused.fuse(model), loss_modules, image)
    torch.testing.assert_close(got.cpu(), want, rtol=1e-2, atol=0)
    assert ((got_grad.cpu() - want_grad).norm() / want_grad.norm()).item() < 5e-2


def test_blocks_take_in_the_pools_and_reuse_their_buffers():
    """The seed's layers: both pools go into their blocks (ReLU after the pool), and a second evaluation writes
    into the first one's buffers (the memory plan), with bitwise the same losses and gradient."""
    model, loss_modules, image = _models(TAPS["seed"], h=48, w=64)
    fast = fused.fuse(model)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in fast)
    assert [b.pool for b in fast if isinstance(b, fused.ConvBlock)] == [False, True, False, True, False]
    first, first_grad = _losses_and_grad(fast, loss_modules, image)
    pooled = fast.conv_2.workspace._buffers[(id(fast.conv_2), "pool")]
    pointer = pooled.data_ptr()
    second, second_grad = _losses_and_grad(fast, loss_modules, image)
    assert fast.conv_2.workspace._buffers[(id(fast.conv_2), "pool")].data_ptr() == pointer
    assert torch.equal(first, second) and torch.equal(first_grad, second_grad)


def test_two_live_graphs_do_not_share_buffers():
    """A forward while another graph awaits its backward gets fresh tensors: both gradients stay right."""
    model, loss_modules, image = _models(TAPS["gatys"], h=48, w=64)
    want = [_losses_and_grad(model, loss_modules, x)[1] for x in (image, image.flip(-1))]
    fast = fused.fuse(model)
    graphs = []
    for x in (image, image.flip(-1)):
        x = x.clone().requires_grad_(True)
        fast(x)
        graphs.append((x, torch.stack([t.loss for t in loss_modules]).sum()))
    for (x, total), grad in zip(reversed(graphs), reversed(want)):
        total.backward()
        assert ((x.grad - grad).norm() / grad.norm()).item() < 1e-2



def test_a_retained_graph_keeps_its_buffers():
    """backward(retain_graph=True), another evaluation, then the retained graph's second backward: its buffers
    were not lent out again, so it gives the same gradient."""
    model, loss_modules, image = _models(TAPS["seed"], h=48, w=64)
    fast = fused.fuse(model)
    x = image.clone().requires_grad_(True)
    fast(x)
    total = torch.stack([t.loss for t in loss_modules]).sum()
    total.backward(retain_graph=True)
    first = x.grad.clone()
    _losses_and_grad(fast, loss_modules, image.flip(-1))
    x.grad = None
    total.backward()
    assert torch.equal(x.grad, first)

def test_gram_product_is_the_matrix_product():
    m = torch.randn(64, 5000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fused.gram_product(m), m @ m.t(), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("shape", [(1, 64, 64, 86), (2, 3, 9, 11), (1, 1, 2, 2)])
@pytest.mark.parametrize("values", ["continuous", "ties"])
def test_max_pool_is_atens_kernel_ties_included(shape, values):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g)
    if values == "ties":  # whole windows of equal values, and ties between some of a window's entries only
        x = torch.randint(-2, 3, shape, generator=g).float()
    want, want_idx = torch.ops.aten.max_pool2d_with_indices(x, *fused.POOL_ARGS)
    out, idx = torch.full_like(want, float("nan")), torch.full_like(want_idx, -1)
    fused.max_pool(x, out, idx)
    assert torch.equal(out, want) and torch.equal(idx, want_idx)  # the indices route the backward's gradient


def test_fast_setup_computes_the_targets_once_through_its_own_kernels():
    """``targets=False`` + ``fuse(model, content, style)``: the images run only through the fused kernels; the
    targets equal the plain graph's to rounding, and the content image has a content loss of exactly 0."""
    taps = TAPS["conv and relu of one layer, and a pool"]  # a loss module outside the blocks too
    content_layers, style_layers = ({n: 1.0 for n in names} for names in taps)
    gen = torch.Generator().manual_seed(1)
    content, style = torch.rand(2, 1, 3, 48, 64, generator=gen)
    net = features.init_untrained(features.vgg19_features(features.last_tap(content_layers, style_layers)))
    _, plain_cl, plain_sl = features.build_style_model(net, content, style, content_layers, style_layers)
    model, cl, sl = features.build_style_model(net, content, style, content_layers, style_layers, targets=False)
    assert all(m.target.numel() == 0 for m in [*cl, *sl])
    fast = fused.fuse(model, content, style)
    for got, want in zip([*cl, *sl], [*plain_cl, *plain_sl]):  # Winograd's ~1e-5
        assert got.target.shape == want.target.shape
        assert ((got.target - want.target).norm() / want.target.norm()).item() < 1e-4
    fast(content)
    assert all(m.loss.item() == 0 for m in cl)
