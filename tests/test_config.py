import dataclasses

import pytest
import yaml

from stylize.config import Config, build_config, parse_sets, to_yaml
from stylize.errors import StylizeError


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_precedence_defaults_yaml_set_flags(tmp_path):
    path = write(tmp_path, "steps: 10\nsize: 64\nseed: 3\n")
    cfg = build_config(path, ["size=96", "seed=4"], {"seed": 5, "style_weight": None})
    assert (cfg.steps, cfg.size, cfg.seed, cfg.style_weight) == (10, 96, 5, 1e6)


def test_numbers_in_any_spelling(tmp_path):
    # YAML reads 1e6 as a string; --set values are strings.
    cfg = build_config(write(tmp_path, "style_weight: 1e6\nsteps: 300.0\nsize: 1e3\n"), ["content_weight=2.5"])
    assert cfg.style_weight == 1e6 and cfg.steps == 300 and cfg.size == 1000 and cfg.content_weight == 2.5


def test_keywords_are_case_insensitive_and_yaml_keys_take_dashes(tmp_path):
    cfg = build_config(write(tmp_path, "style-weight: 5\ndevice: CPU\nweights: Untrained\ninit: Content\n"))
    assert (cfg.style_weight, cfg.device, cfg.weights, cfg.init) == (5.0, "cpu", "untrained", "content")


def test_layers_as_list_mapping_or_comma_string():
    assert build_config(sets=["style_layers=[conv_1, relu4_2]"]).style_layers == {"conv_1": 1.0, "relu4_2": 1.0}
    assert build_config(sets=["style_layers={conv1_1: 0.5}"]).style_layers == {"conv1_1": 0.5}
    assert build_config(overrides={"content_layers": "conv4_2,conv_5"}).content_layers == {"conv4_2": 1.0, "conv_5": 1.0}


def test_gatys_config_uses_the_papers_layers():
    cfg = build_config("configs/gatys.yaml")
    assert cfg.style_layers == dict.fromkeys(["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"], 0.2)
    assert cfg.content_layers == {"conv4_2": 1.0}


@pytest.mark.parametrize("sets, message", [
    (["stepz=3"], "unknown key 'stepz'. Did you mean 'steps'?"),
    (["steps=0"], "steps: 0 is out of range: allowed between 1 and 10000000"),
    (["steps=2.5"], "steps: expected a whole number"),
    (["size=8"], "size: 8 is out of range: allowed between 16 and 65536"),
    (["style_weight=-1"], "style_weight: -1 is out of range"),
    (["style_weight=nan"], "style_weight: 'nan' is out of range"),
    (["content_weight=lots"], "content_weight: expected a number"),
    (["device=gpu"], "device: unknown device 'gpu'. Did you mean 'cpu'?"),
    (["style_layers=[conv_99]"], "style_layers: unknown VGG19 layer 'conv_99'"),
    (["style_layers={conv_1: -2}"], "style_layers.conv_1: -2 is out of range"),
    (["style_layers=[]", "content_layers=[]"], "no style or content layers"),
    (["steps"], "expected key=value"),
    (["steps=" + "9" * 400], "is out of range: allowed between 1 and 10000000"),
    (["style_weight=1e400"], "out of range"),
    (["style_weight=1" + "0" * 400], "style_weight: "),
    (["style_layers=[{conv_1: 2}]"], "expected a list of layer names"),
    (["style_layers={conv_1: 1, conv1_1: 5}"], "'conv_1' and 'conv1_1' are the same layer"),
    (["weights=untrainde"], "Did you mean 'untrained'?"),
    (["init=nosie"], "Did you mean 'noise'?"),
])
def test_bad_values_say_what_is_allowed(sets, message):
    with pytest.raises(StylizeError, match=None) as err:
        build_config(sets=sets)
    assert message in str(err.value)


def test_unknown_yaml_key_names_the_file_and_suggests(tmp_path):
    path = write(tmp_path, "style_wieght: 10\n")
    with pytest.raises(StylizeError, match=r"c.yaml: unknown key 'style_wieght'. Did you mean 'style_weight'\?"):
        build_config(path)


@pytest.mark.parametrize("text, message", [
    ("steps: [1,\n", "invalid YAML at line 2"),
    ("- a\n- b\n", "expected a mapping"),
    ("steps: 'x'\n", "steps: expected a whole number"),
])
def test_bad_yaml_files(tmp_path, text, message):
    with pytest.raises(StylizeError) as err:
        build_config(write(tmp_path, text))
    assert message in str(err.value)


def test_missing_config_file_lists_bundled_ones():
    with pytest.raises(StylizeError, match="config file not found: nope.yaml.*bundled config: default, gatys"):
        build_config("nope.yaml")


def test_empty_config_name_lists_bundled_configs():
    with pytest.raises(StylizeError, match="bundled config: default, gatys"):
        build_config("")


def test_bundled_config_by_name_from_anywhere():
    assert build_config("gatys") == build_config("gatys.yaml") == build_config("configs/gatys.yaml")


def test_empty_yaml_is_the_defaults(tmp_path):
    assert build_config(write(tmp_path, "")) == Config()


def test_print_config_round_trips(tmp_path):
    cfg = build_config("gatys", ["steps=7", "init=content"])
    again = build_config(write(tmp_path, to_yaml(cfg)))
    assert again == cfg
    assert yaml.safe_load(to_yaml(cfg))["steps"] == 7


def test_parse_sets_reads_yaml_values():
    assert parse_sets(["steps=5", "init=content", "output=a b.png", "size="]) == {
        "steps": 5, "init": "content", "output": "a b.png", "size": None}


def test_every_field_documented_in_readme():
    # README's config table, or a docs/ page's (README is being split into docs/; drafts wait there to be folded in)
    from pathlib import Path
    root = Path(__file__).parent.parent
    text = "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").rglob("*.md"))])
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `")]
    for f in dataclasses.fields(Config):
        assert f"`{f.name}`" in rows, f"README's config table misses {f.name}"


def test_a_mistyped_config_folder_is_not_replaced_by_a_bundled_config():
    with pytest.raises(StylizeError, match="config file not found: typo/gatys.yaml"):
        build_config("typo/gatys.yaml")
