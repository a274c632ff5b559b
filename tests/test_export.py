"""`etc export`: TorchScript (and ONNX where onnxruntime is installed) against eager PyTorch on
real frames, for PSPNet and an smp model; refusals are one-line errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from etc.core.errors import EtcError

PSPNET = {"backbone": "tiny", "width": 0.25, "head_channels": 8}
FPN = {"arch": "fpn", "backbone": "resnet18", "head_channels": 32}
DEEPLAB = {"arch": "deeplabv3plus", "backbone": "mobilenetv3_large_100", "head_channels": 16}


def _checkpoint(path, spec, seed=0):
    from etc.models import build_model
    from etc.models.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = build_model({**spec, "pretrained": None}, 19)
    save_checkpoint(path, {"model": model.state_dict(), "spec": spec, "num_classes": 19, "dataset": "synthetic"})
    return path


@pytest.fixture(scope="module")
def frames(synthetic_tree):
    from etc.data.clips import list_clips, read_image

    return [read_image(f.image) for f in list_clips("synthetic", synthetic_tree, "val")[0].frames[:3]]


@pytest.mark.parametrize("spec", [PSPNET, FPN], ids=["pspnet", "fpn"])
def test_torchscript_export_matches_eager_at_two_sizes(spec, frames, tmp_path):
    from etc.data.pairs import images_to_batch
    from etc.deploy.export import export_model
    from etc.models.checkpoint import load_model_from_checkpoint

    ckpt = _checkpoint(tmp_path / "m.pt", spec)
    r = export_model(ckpt, tmp_path / "m.ts", "torchscript", frames=frames)
    assert r["dynamic"] and list(r["parity"]) == ["48x96", "36x72"]  # the second size needs other padding
    for p in r["parity"].values():
        assert p["identical_labels"] >= 0.999 and p["max_abs_logit_diff"] < 1e-3 and p["frames"] == 3
    loaded = torch.jit.load(str(tmp_path / "m.ts"))
    assert not any("aux" in k for k in loaded.state_dict())  # the inference network only
    model, _ = load_model_from_checkpoint(ckpt)
    x = images_to_batch(frames, channels_last=False)
    with torch.no_grad():
        assert torch.equal(loaded(x).argmax(1), model.eval()(x)["logits"].argmax(1))


def test_an_architecture_whose_graph_freezes_the_size_is_refused_dynamic_and_exported_fixed(frames, tmp_path):
    from etc.deploy.export import export_model

    ckpt = _checkpoint(tmp_path / "d.pt", DEEPLAB)
    with pytest.raises(EtcError, match="does not run at 36×72.*--height/--width"):
        export_model(ckpt, tmp_path / "d.ts", "torchscript", frames=frames)
    assert not (tmp_path / "d.ts").exists()  # refused: nothing written
    r = export_model(ckpt, tmp_path / "d.ts", "torchscript", frames=frames, size=(48, 96))
    assert list(r["parity"]) == ["48x96"] and r["parity"]["48x96"]["identical_labels"] >= 0.999


ONNX_MISSING = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                  reason="onnxruntime not installed (the onnx extra)")


@ONNX_MISSING
def test_onnx_export_of_an_smp_model_matches_eager_at_two_sizes(frames, tmp_path):
    import onnxruntime

    from etc.deploy.export import export_model

    r = export_model(_checkpoint(tmp_path / "m.pt", FPN), tmp_path / "m.onnx", "onnx", frames=frames)
    assert list(r["parity"]) == ["48x96", "36x72"]
    for p in r["parity"].values():
        assert p["identical_labels"] >= 0.999 and p["max_abs_logit_diff"] < 1e-3
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].name == "logits"


@ONNX_MISSING
def test_onnx_pspnet_is_exact_at_a_fixed_size_and_refused_dynamic(frames, tmp_path):
    """Its adaptive pooling, exported, is another computation where the bins do not divide the
    feature map (36×72: a 5×9 map, bins 2, 3, 6)."""
    from etc.deploy.export import export_model

    ckpt = _checkpoint(tmp_path / "m.pt", PSPNET)
    r = export_model(ckpt, tmp_path / "fixed.onnx", "onnx", frames=frames, size=(48, 96))
    assert r["parity"]["48x96"]["max_abs_logit_diff"] < 1e-5 and r["parity"]["48x96"]["identical_labels"] == 1.0
    with pytest.raises(EtcError, match="disagrees with eager PyTorch at 36×72.*--height/--width"):
        export_model(ckpt, tmp_path / "dynamic.onnx", "onnx", frames=frames)
    assert not (tmp_path / "dynamic.onnx").exists()


def test_onnx_without_the_extra_names_the_install_command(frames, tmp_path, monkeypatch):
    from etc.deploy import export

    real = importlib.util.find_spec
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda m: None if m == "onnxruntime" else real(m))
    with pytest.raises(EtcError, match=r"needs (onnx and )?onnxruntime.*pip install -e '\.\[onnx\]'"):
        export.export_model(tmp_path / "none.pt", tmp_path / "m.onnx", "onnx", frames=frames)


def test_cli_prints_the_parity_and_bad_checkpoints_are_one_line_errors(synthetic_tree, tmp_path):
    import yaml

    ckpt = _checkpoint(tmp_path / "m.pt", PSPNET)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"dataset": {"root": str(synthetic_tree)}}))
    cmd = [sys.executable, "-m", "etc", "export", "--config", str(tmp_path / "c.yaml"), "--format", "torchscript"]
    r = subprocess.run([*cmd, "--model", str(ckpt), "--out", str(tmp_path / "m.ts"), "--height", "32", "--width", "64"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "at 32x64 on 4 frames: max |logit difference|" in r.stdout and "% identical labels" in r.stdout
    (tmp_path / "bad.pt").write_bytes(np.arange(10, dtype=np.uint8).tobytes())
    r = subprocess.run([*cmd, "--model", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "b.ts")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bad.pt" in r.stderr, r.stderr
