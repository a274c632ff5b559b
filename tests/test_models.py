"""Every backbone builds, outputs at input resolution, and keeps its parameter count."""

import pytest
import torch

from etc.errors import EtcError
from etc.models import BACKBONES, build_model, count_params, freeze, gflops

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
    model = build_model(SPECS[name], 5)
    model.train()
    out = model(torch.randn(2, 3, 40, 56))
    assert out["logits"].shape == (2, 5, 40, 56) and out["aux"].shape == (2, 5, 40, 56)
    assert out["feat"].shape[:2] == (2, SPECS[name]["head_channels"]) and out["feat"].shape[-2:] == (5, 7)  # stride 8
    model.eval()
    with torch.no_grad():
        ev = model(torch.randn(1, 3, 40, 56))
    assert "aux" not in ev and ev["logits"].shape == (1, 5, 40, 56)


# Regression guard, figures for 19 classes (inference parameters, auxiliary head excluded):
# the default student 132,995, the default teacher 1,608,659, PSPNet-18 (head 256) 13,804,371,
# PSPNet-101 (head 512) 65,583,699.
@pytest.mark.parametrize("spec,count", [
    ({"backbone": "tiny", "width": 0.5, "head_channels": 32}, 132_995),
    ({"backbone": "tiny", "width": 2.0, "head_channels": 64}, 1_608_659),
    ({"backbone": "resnet18", "head_channels": 256}, 13_804_371),
])
def test_parameter_counts_are_stable(spec, count):
    assert count_params(build_model(spec, 19)) == count


def test_gflops_scale_with_pixels():
    model = build_model(SPECS["tiny"], 19)
    small, big = gflops(model, 64, 128), gflops(model, 128, 256)
    assert small > 0 and big == pytest.approx(4 * small, rel=0.05)


def test_freeze_stops_gradients():
    model = freeze(build_model(SPECS["tiny"], 3))
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(EtcError, match="never downloaded at run time"):
        build_model({"backbone": "tiny", "pretrained": str(tmp_path / "nope.pth")}, 3)


def test_pretrained_weights_load_and_wrong_ones_are_refused(tmp_path):
    from etc.models.pspnet import build_backbone

    src = build_backbone({"backbone": "tiny", "width": 0.5})
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    model = build_model({"backbone": "tiny", "width": 0.5, "pretrained": str(path)}, 3)
    assert torch.equal(model.backbone.conv1.weight, src.conv1.weight)
    torch.save(build_backbone({"backbone": "tiny", "width": 1.0}).state_dict(), path)
    with pytest.raises(EtcError, match="does not fit backbone"):
        build_model({"backbone": "tiny", "width": 0.5, "pretrained": str(path)}, 3)
