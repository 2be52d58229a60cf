"""stylize model (stylize.summary): the table against references — torchvision's VGG19, hooks on the real built
model, the closed-form FLOPs, bench's count, the config's losses — and the CLI."""

import json

import pytest
import torch
import torchvision
from torch import nn
from typer.testing import CliRunner

from stylize import bench, build_config, features, images
from stylize.cli import app
from stylize.summary import conv_flops, gram_flops, model_table

runner = CliRunner()
CONFIGS = ["default", "gatys", "untrained"]


def _cfg(name, **overrides):
    return build_config(name, overrides={"weights": "untrained", **overrides})


@pytest.mark.parametrize("name", CONFIGS)
def test_params_are_torchvisions_vgg19_sliced_at_the_cut(name):
    cfg = _cfg(name)
    s = model_table(cfg, 64)
    with torch.device("meta"):  # shapes only: no 548 MB of random init
        reference = torchvision.models.vgg19().features[: s.cut.index + 1]
    assert s.params == sum(p.numel() for p in reference.parameters())
    by_name = {r.name: r.params for r in s.rows}
    for entry in features.LAYERS[: s.cut.index + 1]:
        assert by_name[entry.name] == sum(p.numel() for p in reference[entry.index].parameters())


@pytest.mark.parametrize("name", CONFIGS)
def test_shapes_are_those_of_the_real_model_run_with_hooks(name, pair):
    content_path, style_path = pair  # 60x48: odd sizes after pooling at this size
    size = 37
    cfg = _cfg(name, content=str(content_path))
    s = model_table(cfg, size)
    content = images.to_tensor(images.resize_shorter(images.load_image(content_path), size))
    assert (s.width, s.height) == (content.shape[3], content.shape[2]) == (46, 37)
    style = images.to_tensor(images.resize_cover(images.load_image(style_path), s.width, s.height))
    net = features.init_untrained(features.vgg19_features(s.cut.index, cfg.pooling))  # all three set their recipe
    model, _, _ = features.build_style_model(net, content, style, cfg.content_layers, cfg.style_layers)
    shapes = {}
    for mod_name, m in model.named_children():
        m.register_forward_hook(lambda m, i, o, n=mod_name: shapes.__setitem__(n, tuple(o.shape)))
    with torch.no_grad():
        model(content)
    names = ["normalization" if n == "0" else n for n in shapes]
    assert [r.name for r in s.rows] == names  # one row per module, in order, with the model's own names
    assert [r.shape for r in s.rows] == list(shapes.values())


def test_flops_rows_are_the_closed_forms():
    s = model_table(_cfg("default"), 128)
    rows = {r.name: r for r in s.rows}
    h, w = 128, 170  # the demo content is 4:3
    assert rows["conv_2"].flops == 2 * 64 * 9 * 64 * h * w == conv_flops(64, 64, h, w)
    assert rows["conv_5"].flops == 2 * 128 * 9 * 256 * (h // 4) * (w // 4)
    assert rows["style_loss_5"].flops == 2 * 256**2 * (h // 4) * (w // 4) == gram_flops(256, h // 4, w // 4)
    assert rows["content_loss_4"].flops == 0 and rows["relu_1"].flops == 0 and rows["pool_2"].flops == 0
    # bench counts from the layer table, this from the built modules: two derivations, one number
    cfg = _cfg("default")
    assert s.flops_per_eval == bench.flops_per_eval(h, w, cfg.content_layers, cfg.style_layers)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("size", [32, 77])
def test_flops_per_eval_is_benchs(name, size):
    cfg = _cfg(name)
    s = model_table(cfg, size)
    assert s.flops_per_eval == bench.flops_per_eval(s.height, s.width, cfg.content_layers, cfg.style_layers)


def test_loss_rows_match_the_config():
    cfg = _cfg("gatys", style_layers={"conv1_1": 0.5, "relu2_1": 2.0, "conv4_2": 0.25}, content_layers={"conv4_2": 3.0})
    s = model_table(cfg, 64)
    losses = [(r.name, r.kind, r.observes, r.weight) for r in s.rows if r.kind.endswith("_loss")]
    assert losses == [("style_loss_1", "style_loss", "conv1_1", 0.5),
                      ("style_loss_3", "style_loss", "relu2_1", 2.0),
                      ("content_loss_10", "content_loss", "conv4_2", 3.0),  # content first, as the seed
                      ("style_loss_10", "style_loss", "conv4_2", 0.25)]
    assert s.cut.paper_name == "conv4_2" and s.rows[-1].name == "style_loss_10"
    assert s.targets_bytes == 4 * (64**2 + 128**2 + 512 * s.rows[-1].shape[2] * s.rows[-1].shape[3] + 512**2)


def test_the_cut_line():
    s = model_table(_cfg("default"), 64)
    assert s.built_layers == 11 == sum(1 for r in s.rows if r.paper_name)
    assert s.cut_line() == "cut here: layers after conv3_1 (conv_5) are not built (26 of 37: relu3_1 .. pool5)"
    s = model_table(_cfg("default", style_layers=["pool5"]), 64)
    assert s.built_layers == 37 and s.cut_line().startswith("cut: none; all 37")


def test_weights_auto_resolves_the_recipe_as_run_does():
    s = model_table(build_config(), 64)  # offline: auto -> untrained -> the untrained recipe's layers
    assert s.recipe == "untrained" and s.pooling == "avg" and s.cut.paper_name == "relu3_1"
    assert any(r.kind == "avg_pool" for r in s.rows) and not any(r.kind == "max_pool" for r in s.rows)


def test_channel_counts_are_read_from_the_network(monkeypatch):
    # A thinner net (as a structured-pruned weights file would give): the table follows the modules.
    def thin(spec, upto, pooling="max"):
        net = features.vgg19_features(upto, pooling)
        in_ch = 3
        for i, m in enumerate(net):
            if isinstance(m, nn.Conv2d):
                net[i] = nn.Conv2d(in_ch, m.out_channels // 2, 3, padding=1)
                in_ch = m.out_channels // 2
        return net, "thin"

    monkeypatch.setattr("stylize.summary.weights_.load_features", thin)
    s = model_table(_cfg("default"), 64)
    rows = {r.name: r for r in s.rows}
    assert rows["conv_5"].shape[1] == 128 and rows["conv_5"].params == 64 * 9 * 128 + 128
    assert rows["style_loss_5"].note == "Gram 128x128"


def test_too_small_a_size_is_refused():
    with pytest.raises(Exception, match="too small: layer pool5 .* at least 32 px"):
        model_table(_cfg("default", style_layers=["pool5"]), 20)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_prints_the_table_and_writes_json(tmp_path):
    result = invoke("model", "-c", "default", "--size", 64, "--weights", "untrained", "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in ("style model at 85x64 px", "conv1_1", "style_loss_5", "content x1 on conv2_2",
                 "cut here: layers after conv3_1 (conv_5) are not built (26 of 37", "params: 555,328"):
        assert text in out
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["totals"]["params"] == 555328 and data["cut"]["built_layers"] == 11
    assert [r["name"] for r in data["rows"]][:3] == ["normalization", "conv_1", "style_loss_1"]


@pytest.mark.parametrize("args, message", [
    (["--set", "style_layers=[conv9_9]"], "unknown VGG19 layer 'conv9_9'"),
    (["--size", "8"], "size: 8 is out of range"),
    (["--set", "style_layers=[pool5]", "--size", "20"], "too small"),
    (["--weights", "notes.txt"], "not a PyTorch state_dict"),
    (["--weights", "missing.pt"], "weights: 'missing.pt' is not one of"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("not weights")
    result = invoke("model", "-c", "default", *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
