"""The seed's algorithm, written plainly: the baseline that ``stylize bench`` and the fidelity tests hold us to.

The code follows the lecture's slides (the PyTorch neural-style tutorial) line by line: NCHW tensors, an
``nn.Sequential`` with inserted loss modules, ``torch.mm`` Gram matrices, autograd for every backward, and
LBFGS with the seed's ``while run[0] <= num_steps`` loop. Only two things are factored out, without
changing a single operation: the closure's body (:func:`evaluate`, so bench can time one evaluation) and
the trace of losses it returns. Do not optimise this file: it is the yardstick.
"""

import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

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
        # The tutorial passes tensors already on the device; as_tensor keeps their device (torch.tensor would warn).
        self.mean = torch.as_tensor(mean).reshape(-1, 1, 1)
        self.std = torch.as_tensor(std).reshape(-1, 1, 1)

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
        cnn, torch.tensor([0.485, 0.456, 0.406]).to(input_img.device),
        torch.tensor([0.229, 0.224, 0.225]).to(input_img.device), style_img, content_img, content_layers, style_layers)
    input_img.requires_grad_(True)
    model.requires_grad_(False)
    optimizer = optim.LBFGS([input_img])
    trace = []  # (style_score, content_score, time) per closure evaluation: what the seed prints every 50, timed
    run = [0]
    while run[0] <= num_steps:
        def closure():
            style_score, content_score = evaluate(model, style_losses, content_losses, input_img, optimizer,
                                                  style_weight, content_weight)
            run[0] += 1
            trace.append((style_score.item(), content_score.item(), time.perf_counter()))
            return style_score + content_score
        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return input_img, trace


def evaluate(model, style_losses, content_losses, input_img, optimizer, style_weight, content_weight):
    """The body of the seed's LBFGS closure: clamp, forward, weighted loss sums, backward."""
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
    return style_score, content_score
