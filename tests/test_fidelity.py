"""The seed's code, written plainly, must give the same losses as stylize on the same weights and images.

The functions below follow the lecture's slides (the PyTorch neural-style tutorial) line by line; only
the device handling, the image size and the step count are parameters. ``cnn`` is torchvision's VGG19
``features`` (``make_layers(cfgs["E"])`` is exactly what ``vgg19().features`` is) holding the same seeded
untrained weights that ``--weights FILE`` gives stylize.
"""

import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision.transforms as transforms
from PIL import Image
from torchvision.models import vgg

from stylize import build_config, images, run

# ---- the seed, plainly -------------------------------------------------------------------------------


class ContentLoss(nn.Module):
    def __init__(self, target):
        super(ContentLoss, self).__init__()
        self.target = target.detach()

    def forward(self, input):
        self.loss = F.mse_loss(input, self.target)
        return input


def gram_matrix(input):
    a, b, c, d = input.size()
    features = input.reshape(a * b, c * d)
    G = torch.mm(features, features.t())
    return G.div(a * b * c * d)


class StyleLoss(nn.Module):
    def __init__(self, target_feature):
        super(StyleLoss, self).__init__()
        self.target = gram_matrix(target_feature).detach()

    def forward(self, input):
        G = gram_matrix(input)
        self.loss = F.mse_loss(G, self.target)
        return input


class Normalization(nn.Module):
    def __init__(self, mean, std):
        super(Normalization, self).__init__()
        self.mean = torch.tensor(mean).reshape(-1, 1, 1)
        self.std = torch.tensor(std).reshape(-1, 1, 1)

    def forward(self, img):
        return (img - self.mean) / self.std


def get_style_model_and_losses(cnn, normalization_mean, normalization_std, style_img, content_img,
                               content_layers, style_layers):
    normalization = Normalization(normalization_mean, normalization_std)
    content_losses = []
    style_losses = []
    model = nn.Sequential(normalization)
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = 'conv_{}'.format(i)
        elif isinstance(layer, nn.ReLU):
            name = 'relu_{}'.format(i)
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = 'pool_{}'.format(i)
        else:
            raise RuntimeError('Unrecognized layer: {}'.format(layer.__class__.__name__))
        model.add_module(name, layer)
        if name in content_layers:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module('content_loss_{}'.format(i), content_loss)
            content_losses.append(content_loss)
        if name in style_layers:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature)
            model.add_module('style_loss_{}'.format(i), style_loss)
            style_losses.append(style_loss)
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], ContentLoss) or isinstance(model[i], StyleLoss):
            break
    model = model[:i + 1]
    return model, style_losses, content_losses


def run_style_transfer(cnn, content_img, style_img, input_img, num_steps, content_layers, style_layers,
                       style_weight=1000000, content_weight=1):
    model, style_losses, content_losses = get_style_model_and_losses(
        cnn, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], style_img, content_img, content_layers, style_layers)
    input_img.requires_grad_(True)
    model.requires_grad_(False)
    optimizer = optim.LBFGS([input_img])
    trace = []  # (style_score, content_score) per closure evaluation: what the seed prints every 50
    run = [0]
    while run[0] <= num_steps:
        def closure():
            with torch.no_grad():
                input_img.clamp_(0, 1)
            optimizer.zero_grad()
            model(input_img)
            style_score = 0
            content_score = 0
            for sl in style_losses:
                style_score += sl.loss
            for cl in content_losses:
                content_score += cl.loss
            style_score *= style_weight
            content_score *= content_weight
            loss = style_score + content_score
            loss.backward()
            run[0] += 1
            trace.append((style_score.item(), content_score.item()))
            return style_score + content_score
        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return input_img, trace


# ---- the comparison ----------------------------------------------------------------------------------

SEED_LAYERS = (["conv_4"], ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"])


@pytest.mark.parametrize("config", [None, "gatys"])
def test_first_evaluations_match_the_seed(pair, untrained_file, config):
    content_path, style_path = pair
    imsize = 40
    loader = transforms.Compose([transforms.Resize(imsize), transforms.ToTensor()])
    content_img = loader(Image.open(content_path)).unsqueeze(0)
    _, _, h, w = content_img.shape
    # The seed asserts equal sizes; stylize makes the style the content's size (cover-resize + centre crop),
    # so hand the seed that same style image.
    style_img = images.to_tensor(images.resize_cover(images.load_image(style_path), w, h))

    cnn = vgg.make_layers(vgg.cfgs["E"]).eval()
    state = torch.load(untrained_file)
    cnn.load_state_dict({**cnn.state_dict(), **state})
    input_img = torch.randn(content_img.shape, generator=torch.Generator().manual_seed(0))

    cfg = build_config(config, overrides={"content": str(content_path), "style": str(style_path), "size": imsize,
                                          "steps": 40, "weights": str(untrained_file), "device": "cpu"})
    content_layers, style_layers = SEED_LAYERS if config is None else (["conv_10"], ["conv_1", "conv_3", "conv_5", "conv_9", "conv_13"])
    style_weight = cfg.style_weight * (0.2 if config == "gatys" else 1.0)  # gatys: w_l = 0.2 on every layer
    _, seed_trace = run_style_transfer(cnn, content_img, style_img, input_img, 40, content_layers, style_layers,
                                       style_weight=style_weight)
    ours = run(cfg, write=False)

    assert len(seed_trace) == 60  # the seed's `while run <= 40` overshoots by one LBFGS step...
    assert len(ours.history) == 40  # ...we stop at exactly `steps` evaluations
    for (seed_style, seed_content), record in zip(seed_trace, ours.history):
        assert record.style == pytest.approx(seed_style, rel=1e-5)
        assert record.content == pytest.approx(seed_content, rel=1e-5)


def test_default_config_is_the_seed_recipe():
    cfg = build_config("default")
    assert cfg == build_config()
    assert list(cfg.style_layers) == SEED_LAYERS[1] and list(cfg.content_layers) == SEED_LAYERS[0]
    assert set(cfg.style_layers.values()) == {1.0}
    assert (cfg.style_weight, cfg.content_weight, cfg.steps, cfg.init, cfg.size) == (1e6, 1.0, 300, "noise", None)
    assert (cfg.lbfgs_max_iter, cfg.lbfgs_history) == (20, 100)  # torch.optim.LBFGS defaults, as the seed uses
    assert dataclasses.asdict(cfg) == dataclasses.asdict(build_config("configs/default.yaml"))
