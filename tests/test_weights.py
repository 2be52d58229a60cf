import pytest
import torch

from stylize import features, weights
from stylize.errors import StylizeError

CUT = features.layer("conv3_1").index


def test_untrained_is_seeded_and_reported():
    net, info = weights.load_features("untrained", CUT)
    again, _ = weights.load_features("untrained", CUT)
    assert info.kind == "untrained" and info.warning is None
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))


def test_auto_offline_falls_back_loudly():
    net, info = weights.load_features("auto", CUT)
    assert info.kind == "untrained"
    assert "UNTRAINED" in info.warning and "STYLIZE_OFFLINE" in info.warning and "weights import" in info.warning


def test_imagenet_offline_is_an_error():
    with pytest.raises(StylizeError, match="STYLIZE_OFFLINE is set"):
        weights.load_features("imagenet", CUT)


@pytest.mark.parametrize("prefix, wrap", [("", None), ("features.", None), ("features.", "state_dict")])
def test_state_dict_files_load(tmp_path, prefix, wrap):
    src = features.init_untrained(features.vgg19_features(CUT), seed=5)
    state = {prefix + k: v for k, v in src.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a full VGG19 file has a classifier: ignored
    path = tmp_path / "w.pth"
    torch.save({wrap: state} if wrap else state, path)
    net, info = weights.load_features(str(path), CUT)
    assert info.kind == "file" and info.source == str(path)
    assert torch.equal(net[0].weight, src[0].weight)


def test_bad_weight_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(StylizeError, match="not a PyTorch state_dict"):
        weights.load_features(str(text), CUT)
    wrong = tmp_path / "resnet.pt"
    torch.save({"0.weight": torch.zeros(8, 3, 3, 3)}, wrong)
    with pytest.raises(StylizeError, match=r"'features.0.weight' has shape \(8, 3, 3, 3\), VGG19 needs \(64, 3, 3, 3\)"):
        weights.load_features(str(wrong), CUT)
    partial = tmp_path / "partial.pt"
    torch.save({"0.weight": torch.zeros(64, 3, 3, 3)}, partial)
    with pytest.raises(StylizeError, match="has no tensor 'features.0.bias'"):
        weights.load_features(str(partial), CUT)
    with pytest.raises(StylizeError, match="weights file not found"):
        weights.load_features("missing.pth", CUT)


def test_import_checks_the_hash(tmp_path):
    fake = tmp_path / "vgg19-dcbb9e9d.pth"
    fake.write_bytes(b"not the real file")
    with pytest.raises(StylizeError, match="expected dcbb9e9d"):
        weights.import_file(fake)
    assert not weights.cache_path().exists()


def test_import_then_auto_uses_the_cached_file(tmp_path, monkeypatch, untrained_file):
    # We cannot ship the real 548 MB file: pretend the untrained file is it by matching its hash prefix.
    monkeypatch.setattr(weights, "IMAGENET_SHA256_PREFIX", weights.sha256(untrained_file)[:8])
    dest = weights.import_file(untrained_file)
    assert dest == weights.cache_path() and dest.read_bytes() == untrained_file.read_bytes()
    assert weights.info()["cached"] is True and weights.info()["auto_would_use"] == "imagenet (cached)"
    net, info = weights.load_features("auto", CUT)
    assert info.kind == "imagenet" and info.warning is None
    assert torch.equal(net[0].weight, torch.load(untrained_file)["0.weight"])


def test_info_without_cache():
    data = weights.info()
    assert data["cached"] is False and data["offline"] is True
    assert data["cache_file"].endswith("checkpoints/vgg19-dcbb9e9d.pth")


def test_download_into_a_fresh_cache(monkeypatch, untrained_file):
    """The real download code path, from a file:// URL: no network, a cache folder that does not exist yet."""
    monkeypatch.delenv("STYLIZE_OFFLINE")
    monkeypatch.setattr(weights, "IMAGENET_URL", untrained_file.as_uri())
    monkeypatch.setattr(weights, "IMAGENET_SHA256_PREFIX", weights.sha256(untrained_file)[:8])
    assert not weights.cache_path().parent.exists()
    net, info = weights.load_features("imagenet", CUT)
    assert info.kind == "imagenet" and weights.cache_path().read_bytes() == untrained_file.read_bytes()
    assert torch.equal(net[0].weight, torch.load(untrained_file)["0.weight"])


def test_download_with_a_wrong_hash_is_refused(monkeypatch, untrained_file):
    monkeypatch.delenv("STYLIZE_OFFLINE")
    monkeypatch.setattr(weights, "IMAGENET_URL", untrained_file.as_uri())
    with pytest.raises(StylizeError, match="could not download"):
        weights.load_features("imagenet", CUT)
    assert not weights.cache_path().exists()
    _, info = weights.load_features("auto", CUT)  # auto: the same failure becomes the loud fallback
    assert info.kind == "untrained" and "could not download" in info.warning
