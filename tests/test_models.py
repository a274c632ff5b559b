"""PSPNet: every backbone builds, outputs at input resolution, and keeps its parameter count
(the whole registry is tested in test_registry.py)."""

import pytest
import torch
import torch.nn as nn

from etc.core.errors import EtcError
from etc.models import BACKBONES, build_model, count_params, freeze, gflops, set_feature_tap
from etc.models.pspnet import build_backbone

SPECS = {
    "tiny": {"backbone": "tiny", "width": 0.5, "head_channels": 16},
    "resnet18": {"backbone": "resnet18", "head_channels": 32},
    "resnet34": {"backbone": "resnet34", "head_channels": 32},
    "resnet50": {"backbone": "resnet50", "head_channels": 32},
    "resnet101": {"backbone": "resnet101", "head_channels": 32},
    "mobilenetv2_100": {"backbone": "mobilenetv2_100", "head_channels": 32},
}


def test_every_registered_backbone_is_tested():
    assert set(SPECS) == set(BACKBONES)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_builds_and_outputs_at_input_resolution(name):
    torch.manual_seed(0)
    model = build_model(SPECS[name], 5).train()
    out = model(torch.randn(2, 3, 40, 56))
    assert out["logits"].shape == (2, 5, 40, 56) and out["aux"].shape == (2, 5, 40, 56)
    assert out["feat"].shape == (2, SPECS[name]["head_channels"], 5, 7)  # output stride 8
    model.eval()
    with torch.no_grad():
        ev = model(torch.randn(1, 3, 40, 56))
    assert set(ev) == {"logits", "feat"} and ev["logits"].shape == (1, 5, 40, 56)


def test_no_aux_head_when_its_weight_is_zero():
    model = build_model({**SPECS["tiny"], "aux_weight": 0.0}, 3).train()
    assert model.aux is None and "aux" not in model(torch.randn(2, 3, 32, 32))


def test_features_are_taken_before_dropout():
    """PF/MF/PA compare ``feat``: dropout must not perturb it, but it does perturb the logits."""
    torch.manual_seed(0)
    model = build_model({**SPECS["tiny"], "dropout": 0.5}, 3).train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()  # deterministic apart from dropout
    x = torch.randn(2, 3, 32, 32)
    a, b = model(x), model(x)
    assert torch.equal(a["feat"], b["feat"]) and not torch.equal(a["logits"], b["logits"])


def test_pyramid_tap_is_the_pyramid_pooling_output_and_changes_nothing_else():
    """kd_features: pyramid (the reference's ``fea``): the backbone's stage 4 ⊕ its four pooled
    branches, 2× its channels; the logits are the same network's."""
    torch.manual_seed(0)
    model = build_model(SPECS["tiny"], 3).eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        head = model(x)
        set_feature_tap(model, "pyramid", "student")
        pyr = model(x)
        expected = model.ppm(model.backbone(x)[1])
    c4 = model.backbone.feature_info.channels()[-1]
    assert pyr["feat"].shape == (1, 2 * c4, 5, 7) and torch.equal(pyr["feat"], expected)
    assert torch.equal(pyr["feat"][:, :c4], model.backbone(x)[1])  # the input comes first
    assert torch.equal(head["logits"], pyr["logits"]) and head["feat"].shape[1] == 16


def test_an_unknown_feature_tap_names_the_key_and_the_choices():
    model = build_model(SPECS["tiny"], 3)
    with pytest.raises(EtcError, match="kd_features is 'nowhere'.*teacher.*head, pyramid"):
        set_feature_tap(model, "nowhere", "teacher")


# Regression guard, 19 classes, inference parameters (auxiliary head excluded):
# default student (tiny ×0.5, head 32) 119,471; default teacher (tiny ×2.0, head 64) 1,595,267;
# PSPNet-18 as in the reference code (resnet18, head 256) 13,804,371.
@pytest.mark.parametrize(
    "spec,count,with_aux",
    [
        ({"backbone": "tiny", "width": 0.5, "head_channels": 32}, 119_471, 129_378),
        ({"backbone": "tiny", "width": 2.0, "head_channels": 64}, 1_595_267, 1_670_358),
        ({"backbone": "resnet18", "head_channels": 256}, 13_804_371, 14_399_590),
    ],
)
def test_parameter_counts_are_stable(spec, count, with_aux):
    model = build_model(spec, 19)
    assert count_params(model) == count and count_params(model, inference=False) == with_aux


def test_gflops_counts_two_flops_per_mac_and_scales_with_pixels():
    conv = nn.Conv2d(3, 8, 1, bias=False)
    assert gflops(conv, 10, 10) == pytest.approx(2 * 3 * 8 * 100 / 1e9)
    model = build_model(SPECS["tiny"], 19)
    small, big = gflops(model, 64, 128), gflops(model, 128, 256)
    assert small > 0 and big == pytest.approx(4 * small, rel=0.05)
    assert next(model.parameters()).device.type == "cpu"


def test_freeze_stops_gradients():
    model = freeze(build_model(SPECS["tiny"], 3))
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_width_is_refused_for_timm_backbones():
    with pytest.raises(EtcError, match="width scales only the 'tiny' backbone"):
        build_backbone({"backbone": "resnet18", "width": 0.5})


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(
        EtcError, match="a local file is never downloaded.*timm.create_model\\('resnet18'"
    ):
        build_model({"backbone": "resnet18", "pretrained": str(tmp_path / "resnet18.pth")}, 3)


def test_pretrained_weights_load_and_wrong_ones_are_refused(tmp_path):
    src = build_backbone({"backbone": "tiny", "width": 0.5})
    path = tmp_path / "w.pth"
    # a whole-classifier state dict fits: keys the feature extractor lacks (fc.*) are ignored
    torch.save({**src.state_dict(), "fc.weight": torch.zeros(10, 64)}, path)
    model = build_model({"backbone": "tiny", "width": 0.5, "pretrained": str(path)}, 3)
    assert torch.equal(model.backbone.conv1[0].weight, src.conv1[0].weight)
    torch.save(build_backbone({"backbone": "tiny", "width": 1.0}).state_dict(), path)
    with pytest.raises(EtcError, match="do not fit backbone 'tiny'"):
        build_model({"backbone": "tiny", "width": 0.5, "pretrained": str(path)}, 3)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(EtcError, match="cannot be read"):
        build_model({"backbone": "tiny", "width": 0.5, "pretrained": str(path)}, 3)


def test_model_info_command_prints_every_model():
    from click.testing import CliRunner

    from etc.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "model-info",
            "--config",
            "workflow/configs/smoke.yaml",
            "--height",
            "48",
            "--width",
            "96",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("teacher: pspnet/tiny")
    assert lines[1].startswith("student/student: pspnet/tiny")
    assert all("GFLOPs at 48×96" in line for line in lines)


@pytest.mark.slow
def test_model_info_all_lists_every_registered_model():
    from click.testing import CliRunner

    from etc.cli import cli
    from etc.models import registered_models

    args = ["model-info", "--config", "workflow/configs/smoke.yaml", "--all", "--height", "64", "--width", "64"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    names = [line.split(",")[0] for line in result.output.splitlines()]
    assert names == [f"{a}/{b}" for a, b in registered_models()]


def test_batch_size_one_trains_and_larger_batches_are_normalised_as_before():
    """A batch of one through the 1×1 pyramid bin (one value per channel, no batch statistics)
    normalises with the running statistics, unchanged, instead of raising; at two and more every
    BatchNorm computes exactly what nn.BatchNorm2d computes."""
    from etc.models import build_model
    from etc.models.layers import SingleValueBatchNorm2d

    torch.manual_seed(0)
    model = build_model({"backbone": "tiny", "width": 0.5, "head_channels": 16}, 5).train()
    bin_norm = model.ppm.stages[0][1][1]
    assert type(bin_norm) is SingleValueBatchNorm2d
    before = bin_norm.running_mean.clone(), bin_norm.running_var.clone()
    out = model(torch.randn(1, 3, 48, 96))
    (out["logits"].sum() + out["aux"].sum()).backward()
    assert torch.equal(bin_norm.running_mean, before[0]) and torch.equal(bin_norm.running_var, before[1])
    assert bin_norm.weight.grad is not None  # its affine still trains

    x = torch.randn(2, 3, 48, 96)
    torch.manual_seed(1)
    got = model(x)["feat"]
    for m in model.modules():
        if type(m) is SingleValueBatchNorm2d:
            m.__class__ = torch.nn.BatchNorm2d
    torch.manual_seed(1)
    assert torch.equal(got, model(x)["feat"])


@pytest.mark.parametrize("shape,size", [((4, 11, 12, 24), (96, 192)), ((2, 8, 1, 1), (12, 24)),
                                        ((2, 8, 6, 6), (12, 24)), ((3, 5, 7, 9), (50, 61))])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_upsampling_gradient_is_bitwise_torchs(shape, size, threads):
    """etc.models.layers.upsample_bilinear: F.interpolate's values, and its gradient from the
    channels-last kernel bitwise equal to the NCHW kernel's (training gives the same weights),
    in NCHW layout; a tensor without gradient takes the plain path."""
    from etc.models.layers import _BilinearUp, upsample_bilinear

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g, requires_grad=True)
        grad = torch.randn(shape[:2] + size, generator=g)
        ref = torch.nn.functional.interpolate(x, size, mode="bilinear", align_corners=False)
        (ref_dx,) = torch.autograd.grad(ref, x, grad)
        out = upsample_bilinear(x, size)
        assert out.grad_fn is not None and type(out.grad_fn).__name__.startswith(_BilinearUp.__name__)
        (dx,) = torch.autograd.grad(out, x, grad)
        assert torch.equal(out, ref) and torch.equal(dx, ref_dx) and dx.is_contiguous()
        with torch.no_grad():
            assert torch.equal(upsample_bilinear(x, size), ref)
    finally:
        torch.set_num_threads(previous)


def test_a_student_trains_to_the_same_weights_through_either_upsampling(monkeypatch):
    """Two SGD steps of a PSPNet student with etc's upsampling and with plain F.interpolate:
    every weight bitwise equal."""
    import etc.models.layers as layers

    def trained(plain: bool):
        if plain:
            monkeypatch.setattr(layers, "_BilinearUp", type("Plain", (), {"apply": staticmethod(
                lambda x, size: torch.nn.functional.interpolate(x, size, mode="bilinear", align_corners=False))}))
        torch.manual_seed(0)
        model = build_model({"backbone": "tiny", "width": 0.5, "head_channels": 8, "dropout": 0.0}, num_classes=5)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x = torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(1))
        y = torch.randint(0, 5, (2, 32, 64), generator=torch.Generator().manual_seed(2))
        for _ in range(2):
            out = model(x)
            loss = nn.functional.cross_entropy(out["logits"], y) + 0.4 * nn.functional.cross_entropy(out["aux"], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.state_dict()

    ours, plain = trained(False), trained(True)
    assert all(torch.equal(ours[k], plain[k]) for k in ours)
