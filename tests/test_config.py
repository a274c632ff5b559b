from pathlib import Path

import pytest
import yaml

from etc.core.config import load_config, validate_config
from etc.core.errors import EtcError

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


def test_schema_loss_terms_are_the_registry():
    from etc.core.config import load_schema
    from etc.losses.registry import TERMS

    props = load_schema()["properties"]["ablations"]["additionalProperties"]["properties"]
    assert set(props) == set(TERMS)


def test_schema_loss_forms_are_the_registry():
    """A term with more than one form has a `losses.<term>_form` key listing exactly them, its
    default the registry's first; a term with one form has none."""
    from etc.core.config import load_schema
    from etc.losses.registry import TERMS, form_key

    props = load_schema()["properties"]["losses"]["properties"]
    for term, info in TERMS.items():
        key = form_key(term)
        if len(info.forms) > 1:
            assert props[key]["enum"] == list(info.forms) and props[key]["default"] == next(iter(info.forms))
        else:
            assert key not in props


def test_real_data_presets_use_the_reference_forms():
    for name in ("cityscapes", "camvid"):
        cfg = load_config(ROOT / "workflow" / "configs" / f"{name}.yaml")
        losses = cfg["losses"]
        assert {losses[f"{t}_form"] for t in ("tl", "pi", "pf", "pa")} == {"reference"}, name
        assert losses["tl_on"] == "logits" and losses["mf_frames"] == 3 and losses["mf_hidden"] == 4
        assert cfg["augment"]["rotation_p"] == 0.5 and cfg["augment"]["blur_p"] == 0.5
        assert cfg["augment"]["pad_image"] == "imagenet_mean"
        assert cfg["ablations"]["tl"]["tl"] == 0.1
    assert len(load_config(ROOT / "workflow" / "configs" / "cityscapes.yaml")["losses"]["ce_weights"]) == 19


def test_even_blur_kernel_is_refused():
    with pytest.raises(EtcError, match=r"augment\.blur_kernel"):
        validate_config({"augment": {"blur_kernel": 4}})


def test_schema_estimator_pattern_is_the_registry():
    import re

    from etc.core.config import load_schema
    from etc.flow.estimators import ESTIMATORS

    schema = load_schema()
    pattern = schema["definitions"]["estimator"]["pattern"]
    # one pattern: flow.estimator and the study's lists refer to it, the evaluation key repeats it
    assert schema["properties"]["flow"]["properties"]["estimator"]["$ref"] == "#/definitions/estimator"
    assert schema["properties"]["evaluate"]["properties"]["flow_estimator"]["pattern"] == pattern
    study = schema["properties"]["flow_study"]["properties"]
    assert study["train_estimators"]["items"] == study["measure_estimators"]["items"] == {"$ref": "#/definitions/estimator"}
    families = set(re.findall(r"[a-z]+", pattern.split(":")[0] + "|" + pattern)) & {"dis", "gt", "ptlflow"}
    assert families == set(ESTIMATORS)
    for spec in ("dis", "dis:fast", "dis:ultrafast", "dis:medium", "gt", "ptlflow:raft_small"):
        assert re.match(pattern, spec), spec
    assert not re.match(pattern, "farneback")


def test_workflow_asks_the_loss_registry_what_a_student_needs():
    """common.smk keeps no list of its own: the registry answers without importing torch."""
    import subprocess
    import sys

    code = ("import sys; from etc.losses import ablation_needs; "
            "assert ablation_needs({'ce': 1, 'pa': 1}, 'needs_teacher'); "
            "assert not ablation_needs({'ce': 1, 'tl': 0}, 'needs_flow'); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert "ablation_needs" in text and "DISTILL_TERMS" not in text


def test_command_config_names_the_option_not_the_key(tmp_path, monkeypatch):
    from etc.core.config import command_config

    monkeypatch.chdir(tmp_path)  # no ./config.yaml: the schema defaults
    cfg = command_config(None, {"infer.flip": ("--flip", True), "infer.batch_size": ("--batch-size", None)})
    assert cfg["infer"]["flip"] is True and cfg["infer"]["batch_size"] == 8
    with pytest.raises(EtcError, match=r"^--window: 0 is not allowed \(Offsets k"):
        command_config(None, {"dataset.window": ("--window", [0])})
    (tmp_path / "config.yaml").write_text("infer: {batch_size: 3}\n")
    assert command_config(None)["infer"]["batch_size"] == 3  # ./config.yaml when present


def test_a_batch_the_processes_cannot_share_evenly_is_refused():
    with pytest.raises(EtcError, match=r"'train.student.batch_size': 6 is not divisible by train.student.gpus 4"):
        load_config(None, {"train": {"student": {"batch_size": 6, "gpus": 4}}})
    assert load_config(None, {"train": {"teacher": {"batch_size": 1}}})["train"]["teacher"]["batch_size"] == 1
