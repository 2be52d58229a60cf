"""The Laplacian content term (Li et al. 2017): the pure functions against closed forms and gradcheck, its
module in the model, and the fast path's losses and gradients held to the plain model's."""

import pytest
import torch

from stylize import build_config, features, fused
from stylize.errors import StylizeError
from stylize.losses import LaplacianLoss, laplacian, laplacian_loss


def test_laplacian_of_a_quadratic_is_constant():
    # f(i, j) = a i^2 + b j^2: the discrete (negated) Laplacian is -2a - 2b everywhere, in the pooled grid too:
    # a 4x4 block mean of i^2 over rows 4k..4k+3 is 16 k^2 + 12 k + 3.5, whose second difference is 32 (a = 1).
    i, j = torch.meshgrid(torch.arange(48.0), torch.arange(40.0), indexing="ij")
    image = torch.stack([i**2, 3 * j**2, i**2 - j**2])[None].double()
    unpooled = laplacian(image, pool=1)
    assert unpooled.shape == (1, 3, 46, 38)
    torch.testing.assert_close(unpooled[0, 0], torch.full((46, 38), -2.0, dtype=torch.float64))
    torch.testing.assert_close(unpooled[0, 1], torch.full((46, 38), -6.0, dtype=torch.float64))
    pooled = laplacian(image, pool=4)
    assert pooled.shape == (1, 3, 10, 8)
    for channel, value in enumerate((-32.0, -96.0, 0.0)):
        torch.testing.assert_close(pooled[0, channel], torch.full((10, 8), value, dtype=torch.float64))


def test_laplacian_matches_a_plain_loop():
    x = torch.rand(1, 2, 13, 11, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = torch.nn.functional.avg_pool2d(x, 2)[0]  # (2, 6, 5)
    want = torch.zeros(2, 4, 3, dtype=torch.float64)
    for c in range(2):
        for r in range(1, 5):
            for s in range(1, 4):
                want[c, r - 1, s - 1] = 4 * p[c, r, s] - p[c, r - 1, s] - p[c, r + 1, s] - p[c, r, s - 1] - p[c, r, s + 1]
    torch.testing.assert_close(laplacian(x, 2)[0], want)


def test_a_pool_too_large_for_the_image_is_lowered():
    x = torch.rand(1, 3, 16, 20)
    assert laplacian(x, 8).shape == (1, 3, 1, 2)  # pool 5 (16 // 3): 3x4 pooled px; pool 8 would leave 2x2
    assert laplacian(x, 5).shape[-2:] == laplacian(x, 64).shape[-2:]


def test_laplacian_loss_gradcheck():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 14, 17, generator=gen, dtype=torch.float64, requires_grad=True)
    target = laplacian(torch.rand(1, 3, 14, 17, generator=gen, dtype=torch.float64), 2)
    assert torch.autograd.gradcheck(lambda im: laplacian_loss(im, target, 2), (x,))
    loss = laplacian_loss(x, target, 2)
    torch.testing.assert_close(loss, ((laplacian(x, 2) - target) ** 2).mean())


def _models(laplacian_weight, h=48, w=64):
    content_layers, style_layers = {"relu2_1": 1.0}, {"relu1_1": 1.0, "relu2_1": 0.5}
    gen = torch.Generator().manual_seed(3)
    content, style, image = torch.rand(3, 1, 3, h, w, generator=gen)
    net = features.init_untrained(features.vgg19_features(features.last_tap(content_layers, style_layers)))
    model, cl, sl = features.build_style_model(net, content, style, content_layers, style_layers,
                                               laplacian_weight=laplacian_weight, laplacian_pool=4)
    return model, cl, sl, content, style, image


def test_the_module_sits_on_the_normalized_image_and_is_a_content_loss():
    model, cl, sl, content, _, image = _models(2.5)
    names = list(model._modules)
    assert names[:3] == ["0", "content_loss_laplacian", "conv_1"] and isinstance(cl[0], LaplacianLoss)
    normalized = model[0](image)
    model(image)
    want = 2.5 * ((laplacian(normalized, 4) - laplacian(model[0](content), 4)) ** 2).mean()
    torch.testing.assert_close(cl[0].loss, want)
    assert not any(isinstance(m, LaplacianLoss) for m in _models(0.0)[0])  # weight 0: no module, the seed's model


def test_fast_path_keeps_the_term_and_its_gradient():
    """fuse() leaves the module before the first conv to autograd; retarget() sets its target from the content."""
    model, cl, sl, content, style, image = _models(1.0)
    taps = [*cl, *sl]

    def losses_and_grad(m):
        x = image.clone().requires_grad_(True)
        m(x)
        total = torch.stack([t.loss for t in taps])
        total.sum().backward()
        return total.detach(), x.grad

    want, want_grad = losses_and_grad(model)
    target = cl[0].target.clone()
    cl[0].target = torch.empty(0)  # the fast path computes its targets itself
    fast = fused.fuse(model, content, style)
    torch.testing.assert_close(cl[0].target, target, rtol=1e-6, atol=1e-7)
    got, got_grad = losses_and_grad(fast)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=0)
    assert ((got_grad - want_grad).norm() / want_grad.norm()).item() < 1e-3


def test_config_keys():
    cfg = build_config()
    assert (cfg.laplacian_weight, cfg.laplacian_pool) == (0.0, 4)
    assert build_config(sets=["laplacian_weight=30", "laplacian_pool=2"]).laplacian_pool == 2
    with pytest.raises(StylizeError, match="laplacian_pool: 0 is out of range"):
        build_config(sets=["laplacian_pool=0"])
    with pytest.raises(StylizeError, match="laplacian_weight: -1 is out of range"):
        build_config(sets=["laplacian_weight=-1"])
