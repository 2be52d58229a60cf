"""The seed's code, written plainly (``stylize.baseline``), must give the same losses as stylize on the same
weights and images. ``cnn`` is torchvision's VGG19 ``features`` (``make_layers(cfgs["E"])`` is exactly what ``vgg19().features`` is) holding the same seeded
untrained weights that ``--weights FILE`` gives stylize.
"""

import pytest
import torch
import torchvision.transforms as transforms
from PIL import Image
from torchvision.models import vgg

from stylize import build_config, images, run
from stylize.baseline import run_style_transfer

# ---- the comparison ----------------------------------------------------------------------------------

SEED_LAYERS = (["conv_4"], ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"])


@pytest.mark.slow
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "fast"])
@pytest.mark.parametrize("config", [None, "gatys"])
def test_first_evaluations_match_the_seed(pair, untrained_file, config, exact):
    """``exact: true`` runs the seed's graph and loop: 40 evaluations equal to the seed's to 1e-5. The default
    fast path (coarse stage, fused ops, bound-aware LBFGS) computes the same loss (test_fused holds the ops
    to 1e-4) along its own path. At 40 px and 40 evaluations both paths are chaotic: fixed-step LBFGS bounces
    for the first 15-20 evaluations, and a rounding change of 5e-7 in one Gram matrix moves where that ends
    and so the final loss, either way. So the claim is made over five noise seeds: our runs end without the
    seed's late jumps (seen here: 0.055 -> 2.88 at evaluation 40 with the seed's layers, and 2.77 and 0.15
    finals), and at least as low as the seed's own loop ends in four of five. The output is the best image
    evaluated (the blow-up guard), so the loss reported for the output is the lowest."""
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
    content_layers, style_layers = SEED_LAYERS if config is None else (["conv_10"], ["conv_1", "conv_3", "conv_5", "conv_9", "conv_13"])
    wins = 0
    for seed in [0] if exact else range(5):
        input_img = torch.randn(content_img.shape, generator=torch.Generator().manual_seed(seed))
        cfg = build_config(config, overrides={"content": str(content_path), "style": str(style_path), "size": imsize,
                                              "steps": 40, "weights": str(untrained_file), "device": "cpu",
                                              "exact": exact, "seed": seed})
        style_weight = cfg.style_weight * (0.2 if config == "gatys" else 1.0)  # gatys: w_l = 0.2 on every layer
        _, seed_trace = run_style_transfer(cnn, content_img, style_img, input_img, 40, content_layers, style_layers,
                                           style_weight=style_weight)
        ours = run(cfg, write=False)

        assert len(seed_trace) == 60  # the seed's `while run <= 40` overshoots by one LBFGS step...
        full = [r for r in ours.history if r.size == imsize]
        assert len(full) == 40  # ...we stop at exactly `steps` evaluations (the fast path's half-size stage before them)
        if exact:
            for (seed_style, seed_content, _), record in zip(seed_trace, ours.history):
                assert record.style == pytest.approx(seed_style, rel=1e-5)
                assert record.content == pytest.approx(seed_content, rel=1e-5)
            continue
        totals = [r.total for r in full]
        assert all(totals[i] <= 1.25 * min(totals[:i]) for i in range(30, 40)), (seed, totals[30:])  # no late jump
        assert ours.output_losses.total <= min(totals)
        wins += ours.output_losses.total <= sum(seed_trace[39][:2])
    assert exact or wins >= 4


def test_default_config_is_the_seed_recipe():
    cfg = build_config("default")
    assert cfg == build_config()
    assert list(cfg.style_layers) == SEED_LAYERS[1] and list(cfg.content_layers) == SEED_LAYERS[0]
    assert set(cfg.style_layers.values()) == {1.0}
    assert (cfg.style_weight, cfg.content_weight, cfg.steps, cfg.init, cfg.size) == (1e6, 1.0, 300, "noise", None)
    assert (cfg.lbfgs_max_iter, cfg.lbfgs_history) == (20, 100)  # torch.optim.LBFGS defaults, as the seed uses
