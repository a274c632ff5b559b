"""Every registered architecture × backbone: schema agreement, the output contract, the feature
tap, a tl_kd training step, and ImageNet weights (local file or the library's download)."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from etc.core.config import load_config
from etc.core.errors import EtcError
from etc.infer.predict import predict
from etc.models import ARCHITECTURES, build_model, registered_models
from etc.models.checkpoint import load_checkpoint, load_model_from_checkpoint
from etc.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
# The quick suite covers every architecture and every student-sized backbone once; the slow
# suite runs every registered pair (5-20 s each on the 2 shared development cores).
QUICK = {("pspnet", "tiny"), ("segformer", "mit_b0"), ("segformer", "mit_b1"),
         ("deeplabv3plus", "mobilenetv3_large_100"), ("fpn", "efficientnet_b0"),
         ("upernet", "resnet18")}
MODELS = [
    pytest.param(a, b, id=f"{a}/{b}", marks=[] if (a, b) in QUICK else [pytest.mark.slow])
    for a, b in registered_models()
]


def small_spec(arch: str, backbone: str, **extra) -> dict:
    spec = {"arch": arch, "backbone": backbone, "head_channels": 32, **extra}
    if backbone == "tiny":
        spec["width"] = 0.5
    return spec


def test_schema_choices_agree_with_the_registry():
    """The schema accepts exactly the registered pairs, and its enums list nothing else."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["definitions"]["arch"]["enum"] == list(ARCHITECTURES)
    every = {b for arch in ARCHITECTURES.values() for b in arch.backbones}
    assert set(schema["definitions"]["backbone"]["enum"]) == every
    for arch, entry in ARCHITECTURES.items():
        for backbone in sorted(every):
            students = {"s": {"arch": arch, "backbone": backbone}}
            if backbone in entry.backbones:
                assert load_config(None, {"students": students})["students"]["s"]["arch"] == arch
            else:
                with pytest.raises(EtcError, match=f"students.s.backbone': '{backbone}'"):
                    load_config(None, {"students": students})
                with pytest.raises(EtcError, match=f"architecture '{arch}' has no backbone"):
                    build_model(students["s"], 3)


def test_entries_without_arch_are_pspnets():
    """Configs and checkpoints from before the registry keep building the same network."""
    assert load_config(None)["teacher"]["arch"] == "pspnet"
    torch.manual_seed(0)
    old = build_model({"backbone": "tiny", "width": 0.5, "head_channels": 8}, 3).state_dict()
    torch.manual_seed(0)
    new = build_model(small_spec("pspnet", "tiny", head_channels=8), 3).state_dict()
    assert list(old) == list(new) and all(torch.equal(old[k], new[k]) for k in old)


@pytest.mark.parametrize("arch,backbone", MODELS)
def test_output_contract_and_feature_tap(arch, backbone):
    """Logits and aux at the input resolution (48×80: not a multiple of 32), ``feat`` of the
    documented stride, upstream of the classifier and downstream of the backbone."""
    torch.manual_seed(0)
    model = build_model(small_spec(arch, backbone, dropout=0.5), 5).train()
    x = torch.randn(2, 3, 48, 80)
    out = model(x)
    s = model.feat_stride
    assert out["logits"].shape == (2, 5, 48, 80) and out["aux"].shape == (2, 5, 48, 80)
    assert out["feat"].shape == (2, 32, math.ceil(48 / s), math.ceil(80 / s))
    # the layers between backbone and classifier (the decoder) feed both the tap and the
    # logits; a feature-only loss (PF/MF/PA) reaches the backbone but not the classifier
    decoder = [p for n, p in model.named_parameters()
               if not n.startswith(("backbone.", "classifier.", "aux."))]
    ce = F.cross_entropy(out["logits"], torch.randint(0, 5, (2, 48, 80)))
    from_logits = torch.autograd.grad(ce, decoder, retain_graph=True)
    out["feat"].pow(2).mean().backward()
    from_feat = [p.grad for p in decoder]
    assert any(g.abs().sum() > 0 for g in from_logits) and all(g is not None for g in from_feat)
    assert any(g.abs().sum() > 0 for g in from_feat)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    assert model.classifier.weight.grad is None
    # the tap is taken before the head's dropout: only the logits change between two calls
    model.eval()
    model.dropout.train()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert set(a) == {"logits", "feat"}
    assert torch.equal(a["feat"], b["feat"]) and not torch.equal(a["logits"], b["logits"])
    # the coarse scores upsample (and crop) to the logits, and give infer's fused labels
    model.eval()
    with torch.no_grad():
        full, coarse = model(x), model(x, full_logits=False)
    assert set(coarse) == {"logits_low", "logits_size", "feat"}
    up = F.interpolate(coarse["logits_low"], coarse["logits_size"], mode="bilinear", align_corners=False)
    assert torch.equal(up[..., :48, :80], full["logits"])
    assert torch.equal(predict(model, x, fused=True).long(), predict(model, x))


def test_padding_keeps_the_frame_at_the_top_left():
    """A frame padded by the caller and cropped gives the logits of the frame itself: padding
    goes bottom/right, and the crop takes the frame's own region."""
    torch.manual_seed(0)
    model = build_model(small_spec("fpn", "mobilenetv3_large_100"), 4).eval()
    x = torch.randn(1, 3, 40, 70)
    with torch.no_grad():
        own = model(x)
        padded = model(F.pad(x, (0, 26, 0, 24)))  # 64×96: the same padded frame
    assert torch.equal(own["logits"], padded["logits"][..., :40, :70])
    assert torch.equal(own["feat"], padded["feat"][..., :10, :18])


# ------------------------------------------------------------------------------------------
# one tl_kd step of every registered student, from the real training entry point

@pytest.fixture(scope="module")
def kd_setup(synthetic_tree, tmp_path_factory):
    from etc.flow.precompute import precompute_flow

    d = tmp_path_factory.mktemp("registry")
    one = {"iterations": 1, "batch_size": 2, "checkpoint_every": 1}
    cfg = load_config(None, {
        "dataset": {"root": str(synthetic_tree), "window": [-1, 1]},  # 48×96 frames
        "teacher": {"backbone": "tiny", "width": 0.5, "head_channels": 8},
        "train": {"teacher": one, "student": one},
        "ablations": {"tl_kd": {"ce": 1.0, "tl": 1.0, "pi": 1.0, "pf": 1.0, "mf": 1.0, "pa": 1.0}},
    })
    flow = d / "train.h5"
    precompute_flow(cfg, "train", flow, estimator="gt", progress=False)
    teacher = d / "teacher.pt"
    train(cfg, "teacher", teacher, progress=False)
    return cfg, d, flow, teacher


def _one_step(cfg, spec, out, flow, teacher):
    cfg = load_config(None, {**cfg, "students": {"s": spec}})
    torch.manual_seed(cfg["train"]["student"]["seed"])
    initial = build_model(cfg["students"]["s"], 19).state_dict()
    summary = train(cfg, "s/tl_kd", out, flow=flow, teacher=teacher, progress=False)
    model, state = load_model_from_checkpoint(out)
    assert math.isfinite(summary["loss"]) and state["iteration"] == 1
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, initial[k])]
    assert any(k.startswith("backbone.") for k in changed)  # the encoder learns
    assert any(k.startswith("classifier.") for k in changed)


@pytest.mark.parametrize("arch,backbone", MODELS)
def test_one_tl_kd_step_trains_and_round_trips(kd_setup, arch, backbone):
    cfg, d, flow, teacher = kd_setup
    _one_step(cfg, small_spec(arch, backbone), d / f"{arch}_{backbone}.pt", flow, teacher)


def test_pyramid_features_train_a_pspnet_and_are_refused_for_a_zoo_student(kd_setup):
    """losses.kd_features: pyramid (the reference's tap; 2× the backbone's channels for the
    student, another count for the teacher: the affinities are node × node either way)."""
    cfg, d, flow, teacher = kd_setup
    cfg = load_config(None, {**cfg, "losses": {**cfg["losses"], "kd_features": "pyramid"}})
    _one_step(cfg, small_spec("pspnet", "tiny"), d / "pyramid.pt", flow, teacher)
    with pytest.raises(EtcError, match="kd_features is 'pyramid'.*student.*ZooNet"):
        _one_step(cfg, small_spec("fpn", "resnet18"), d / "pyramid_fpn.pt", flow, teacher)


@pytest.mark.slow
def test_a_zoo_teacher_distils_into_a_pspnet_student(kd_setup):
    cfg, d, flow, _ = kd_setup
    zoo_teacher = {"arch": "segformer", "backbone": "mit_b0", "head_channels": 32}
    cfg = load_config(None, {**cfg, "teacher": zoo_teacher})
    teacher = d / "segformer_teacher.pt"
    train(cfg, "teacher", teacher, progress=False)
    assert load_checkpoint(teacher)["spec"]["arch"] == "segformer"
    _one_step(cfg, small_spec("pspnet", "tiny"), d / "from_segformer.pt", flow, teacher)


# ------------------------------------------------------------------------------------------
# ImageNet weights

@pytest.mark.parametrize("backbone", ["resnet18", "mit_b0"])
def test_local_weights_load_into_zoo_encoders(tmp_path, backbone):
    import segmentation_models_pytorch as smp
    import timm
    from safetensors.torch import save_file

    if backbone == "mit_b0":  # the library's encoder state dict, with the classifier it drops
        src = smp.encoders.get_encoder("mit_b0")
        state = {**src.state_dict(), "head.weight": torch.zeros(1000, 256)}
    else:  # a whole timm classifier's state dict
        src = timm.create_model("resnet18")
        state = src.state_dict()
    path = tmp_path / ("w.safetensors" if backbone == "mit_b0" else "w.pth")  # both formats
    if path.suffix == ".pth":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = build_model(small_spec("segformer", backbone, pretrained=str(path)), 3)
    encoder = model.backbone if backbone == "mit_b0" else model.backbone.model
    loaded = encoder.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())
    wrong = tmp_path / "wrong.pth"
    torch.save({k: v[..., :1] if v.ndim else v for k, v in state.items()}, wrong)
    with pytest.raises(EtcError, match=f"do not fit backbone '{backbone}'"):
        build_model(small_spec("segformer", backbone, pretrained=str(wrong)), 3)
    with pytest.raises(EtcError, match=r"not found; a local file is never downloaded.*torch.save"):
        build_model(small_spec("segformer", backbone, pretrained=str(tmp_path / "none.pth")), 3)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """The Hugging Face hub unreachable and its cache empty, whatever this machine has."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


@pytest.mark.parametrize(
    "arch,backbone", [("pspnet", "resnet18"), ("segformer", "mit_b0"), ("deeplabv3plus", "efficientnet_b0")]
)
def test_imagenet_offline_is_a_one_line_error_never_random_weights(offline, arch, backbone):
    with pytest.raises(EtcError, match=f"backbone '{backbone}' .*could not be fetched") as err:
        build_model(small_spec(arch, backbone, pretrained="imagenet"), 3)
    assert "\n" not in str(err.value)


def test_a_checkpoint_loads_offline_whatever_its_pretrained_setting(offline, tmp_path):
    """The checkpoint has every weight: loading it fetches nothing (a teacher trained online
    from `pretrained: imagenet` distils on an offline machine)."""
    from etc.models.checkpoint import save_checkpoint

    model = build_model(small_spec("segformer", "mit_b0"), 3)
    spec = small_spec("segformer", "mit_b0", pretrained="imagenet")
    save_checkpoint(tmp_path / "m.pt", {"spec": spec, "num_classes": 3, "model": model.state_dict()})
    loaded, _ = load_model_from_checkpoint(tmp_path / "m.pt")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_tiny_has_no_imagenet_weights():
    with pytest.raises(EtcError, match="'tiny' .* has no published weights"):
        build_model(small_spec("pspnet", "tiny", pretrained="imagenet"), 3)


# ------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.workflow
def test_smoke_workflow_with_a_segformer_student_by_config_edit_only(tmp_path):
    config = yaml.safe_load((ROOT / "workflow/configs/smoke.yaml").read_text())
    config["students"] = {"segformer": {"arch": "segformer", "backbone": "mit_b0", "head_channels": 32}}
    config["keyframe"]["intervals"] = []  # the teacher's keyframe rows do not involve the student (the smoke tests run them)
    config["keyframe"]["fusion_runs"] = []  # they name the preset's student
    preset = tmp_path / "smoke_segformer.yaml"
    preset.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(preset), "--cores", "2", "--quiet", "all"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    import pandas as pd

    table = pd.read_csv(tmp_path / "results/smoke/table.csv")
    students = table[table["model"] == "segformer"]
    assert set(students["ablation"]) == {"baseline", "tl", "tl_kd"}
    assert all(math.isfinite(v) for v in students["miou"]) and (students["params_m"] > 3).all()
    spec = load_checkpoint(tmp_path / "results/smoke/models/segformer/tl_kd.pt")["spec"]
    assert (spec["arch"], spec["backbone"]) == ("segformer", "mit_b0")
