import pytest
import torch

from stylize.losses import ContentLoss, StyleLoss, content_loss, gram_matrix, style_loss


def test_gram_matrix_closed_form():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # a=1, b=2 channels, c=1, d=2
    expected = torch.tensor([[1 * 1 + 2 * 2, 1 * 3 + 2 * 4], [3 * 1 + 4 * 2, 3 * 3 + 4 * 4]]) / (1 * 2 * 1 * 2)
    assert torch.equal(gram_matrix(f), expected)


def test_gram_matrix_batches_fold_into_channels():
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    g = gram_matrix(f)
    assert g.shape == (6, 6)
    flat = f.reshape(6, 20)
    assert torch.allclose(g, flat @ flat.T / 120)
    assert torch.allclose(g, g.T)


def test_content_and_style_loss_closed_forms():
    x, t = torch.randn(1, 4, 3, 3, dtype=torch.float64), torch.randn(1, 4, 3, 3, dtype=torch.float64)
    assert torch.allclose(content_loss(x, t), ((x - t) ** 2).sum() / x.numel())
    a = gram_matrix(t)
    assert torch.allclose(style_loss(x, a), ((gram_matrix(x) - a) ** 2).sum() / 16)


def test_style_loss_gradient_matches_analytic_form():
    # L = mean((G - A)^2) over an N x N Gram, G = F F^T / k  =>  dL/dF = 4 (G - A) F / (N^2 k)
    x = torch.randn(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    a = gram_matrix(torch.randn(1, 3, 4, 5, dtype=torch.float64))
    style_loss(x, a).backward()
    f = x.detach().reshape(3, 20)
    analytic = 4 * (gram_matrix(x.detach()) - a) @ f / (3**2 * 60)
    assert torch.allclose(x.grad.reshape(3, 20), analytic)
    assert torch.autograd.gradcheck(lambda y: style_loss(y, a), (x.detach().requires_grad_(),))


def test_loss_modules_pass_input_through_and_record_weighted_loss():
    target, x = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3)
    cl, sl = ContentLoss(target, weight=0.5), StyleLoss(target, weight=2.0)
    assert cl(x) is x and sl(x) is x
    assert cl.loss.item() == pytest.approx(0.5 * content_loss(x, target).item())
    assert sl.loss.item() == pytest.approx(2.0 * style_loss(x, gram_matrix(target)).item())
    assert "target" in dict(sl.named_buffers())  # moves with .to(device)
