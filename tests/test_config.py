from pathlib import Path

import pytest
import yaml

from etc.config import load_config, validate_config
from etc.errors import EtcError

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_valid_and_defaults_fill_in():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["dataset"]["name"] == "synthetic"
    assert cfg["train"]["student"]["momentum"] == 0.9  # from the schema, not the file
    assert {"baseline", "tl", "tl_kd"} <= set(cfg["ablations"])


@pytest.mark.parametrize("preset", sorted((ROOT / "workflow" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_presets_are_valid(preset):
    load_config(preset)


def test_unknown_key_is_named():
    with pytest.raises(EtcError, match=r"'flow'.*'estimatr' was unexpected.*known keys here: .*estimator"):
        validate_config({"flow": {"estimatr": "dis"}})


def test_wrong_type_is_named():
    with pytest.raises(EtcError, match=r"config key 'train\.student\.iterations': 'many' is not of type 'integer'"):
        validate_config({"train": {"student": {"iterations": "many"}}})


def test_wrong_enum_lists_allowed_values():
    with pytest.raises(EtcError, match=r"dataset\.name.*allowed: synthetic, cityscapes, camvid"):
        validate_config({"dataset": {"name": "kitti"}})


def test_ablation_with_unknown_term_is_rejected():
    with pytest.raises(EtcError, match=r"ablations\.mine"):
        validate_config({"ablations": {"mine": {"ce": 1.0, "magic": 2.0}}})


def test_bad_yaml_file_names_the_file(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(EtcError, match=str(bad)):
        load_config(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"flow": {"estimator": "ptlflow:raft_small", "ckpt": "x.ckpt"}}))
    assert load_config(ok)["flow"]["estimator"] == "ptlflow:raft_small"
