import pytest
import torch
from torchvision.models import vgg

from stylize import features
from stylize.errors import StylizeError
from stylize.losses import ContentLoss, StyleLoss


def test_layer_table_matches_torchvision_vgg19():
    assert list(features.VGG19_CFG) == vgg.cfgs["E"]
    ours, theirs = features.vgg19_features(), vgg.make_layers(vgg.cfgs["E"])
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert not any(getattr(m, "inplace", False) for m in ours)


@pytest.mark.parametrize("seed_name, paper_name", [
    ("conv_1", "conv1_1"), ("conv_4", "conv2_2"), ("conv_5", "conv3_1"), ("relu_10", "relu4_2"),
    ("conv_13", "conv5_1"), ("pool_2", "pool1"), ("pool_16", "pool5")])
def test_both_naming_schemes_name_the_same_layer(seed_name, paper_name):
    assert features.layer(seed_name) == features.layer(paper_name)


def test_unknown_layer_suggests_a_name():
    with pytest.raises(StylizeError, match="Did you mean 'conv4_2'"):
        features.layer("conv4_22")


def _names(model):
    return [name for name, _ in model.named_children()]


def _model(content_layers, style_layers, size=32):
    net = features.init_untrained(features.vgg19_features())
    c, s = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
    return features.build_style_model(net, c, s, content_layers, style_layers), net, c


def test_seed_layers_sequence_and_cut():
    (model, cls, sls), _, _ = _model({"conv_4": 1.0}, dict.fromkeys(["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"], 1.0))
    assert _names(model) == [
        "0", "conv_1", "style_loss_1", "relu_1", "conv_2", "style_loss_2", "relu_2", "pool_2",
        "conv_3", "style_loss_3", "relu_3", "conv_4", "content_loss_4", "style_loss_4", "relu_4", "pool_4",
        "conv_5", "style_loss_5"]
    assert isinstance(model[0], features.Normalization)
    assert len(cls) == 1 and len(sls) == 5


def test_gatys_layers_sequence_and_cut():
    style = dict.fromkeys(["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"], 0.2)
    (model, cls, sls), _, _ = _model({"conv4_2": 1.0}, style)
    names = _names(model)
    assert [n for n in names if "loss" in n] == [
        "style_loss_1", "style_loss_3", "style_loss_5", "style_loss_9", "content_loss_10", "style_loss_13"]
    assert names[-2:] == ["conv_13", "style_loss_13"]  # cut right after conv5_1's loss
    assert names.index("content_loss_10") == names.index("conv_10") + 1
    assert [sl.weight for sl in sls] == [0.2] * 5


def test_conv_and_relu_of_the_same_number_both_get_a_loss():
    # The seed names both "style_loss_1"; add_module would silently replace the first with the second.
    (model, _, sls), net, c = _model({}, {"conv_1": 1.0, "relu_1": 1.0})
    names = _names(model)
    assert names == ["0", "conv_1", "style_loss_1", "relu_1", "style_loss_relu_1"]
    model(torch.rand_like(c))
    assert len(sls) == 2 and all(sl.loss > 0 for sl in sls)


def test_targets_equal_the_seeds_prefix_recomputation():
    (model, cls, sls), net, c = _model({"relu_3": 1.0}, {"conv_2": 1.0})
    norm = features.Normalization()
    with torch.no_grad():
        expected = net[: features.layer("relu_3").index + 1](norm(c))
    assert torch.allclose(cls[0].target, expected)
    assert isinstance(cls[0], ContentLoss) and isinstance(sls[0], StyleLoss)


def test_untrained_init_is_deterministic_and_independent_of_the_cut():
    a = features.init_untrained(features.vgg19_features(4), seed=0)
    b = features.init_untrained(features.vgg19_features(30), seed=0)
    c = features.init_untrained(features.vgg19_features(4), seed=1)
    assert torch.equal(a[0].weight, b[0].weight) and torch.equal(a[2].weight, b[2].weight)
    assert not torch.equal(a[0].weight, c[0].weight)
    # Kaiming normal, fan_out: std = sqrt(2 / (64 * 9)) for conv1_2
    assert a[2].weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    assert torch.count_nonzero(a[2].bias) == 0


def test_normalization_uses_imagenet_statistics():
    img = torch.full((1, 3, 2, 2), 0.5)
    out = features.Normalization()(img)
    expected = (0.5 - torch.tensor(features.IMAGENET_MEAN)) / torch.tensor(features.IMAGENET_STD)
    assert torch.allclose(out[0, :, 0, 0], expected)
