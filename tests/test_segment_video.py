"""`etc segment-video` on a generated mp4 and a folder of frames: the output's frames and size,
the CSV rows, and labels equal to `etc infer` on the same frames."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from etc.core.errors import EtcError


@pytest.fixture(scope="module")
def trained(synthetic_tree, tmp_path_factory):
    """(config, checkpoint, mp4 of the val clip, its decoded frames' tree, `etc infer` of them)."""
    import imageio.v2 as imageio

    from etc.core.config import load_config
    from etc.core.io import write_png
    from etc.data.clips import list_clips, read_image
    from etc.infer.predict import infer, read_predictions
    from etc.train.loop import train

    tmp = tmp_path_factory.mktemp("segment_video")
    cfg = load_config(None, {"dataset": {"root": str(synthetic_tree), "window": [-1, 1]},
                             "students": {"s": {"backbone": "tiny", "width": 0.25, "head_channels": 8}},
                             "train": {"student": {"iterations": 1, "batch_size": 2}},
                             "infer": {"batch_size": 4, "warmup": 0}})
    ckpt = tmp / "s.pt"
    train(cfg, "s/baseline", ckpt, progress=False)
    import torch

    from etc.models.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(ckpt)  # one step leaves a constant map: spread the classifier's weights
    w = state["model"]["classifier.weight"]
    state["model"]["classifier.weight"] = torch.randn(w.shape, generator=torch.Generator().manual_seed(0)) * 3
    save_checkpoint(ckpt, state)
    (clip,) = list_clips("synthetic", synthetic_tree, "val")
    video = tmp / "in.mp4"
    imageio.mimwrite(video, [read_image(f.image) for f in clip.frames], fps=10, codec="libx264", macro_block_size=1,
                     ffmpeg_log_level="error")
    tree = tmp / "decoded"  # the same dataset, its val frames replaced by the mp4's decoded ones
    shutil.copytree(synthetic_tree, tree)
    decoded = [np.asarray(f)[..., :3] for f in imageio.get_reader(video, format="FFMPEG")]
    assert len(decoded) == len(clip)
    for f, img in zip(clip.frames, decoded, strict=True):
        write_png(tree / f.image.relative_to(synthetic_tree), img)
    cfg_decoded = load_config(None, {**cfg, "dataset": {**cfg["dataset"], "root": str(tree)}})
    infer(cfg_decoded, ckpt, "val", tmp / "infer.h5", progress=False)
    return cfg, ckpt, video, decoded, read_predictions(tmp / "infer.h5")[clip.name]


def test_mp4_gives_one_output_frame_per_input_frame_and_the_labels_of_etc_infer(trained, tmp_path):
    import h5py
    import imageio.v2 as imageio
    import pandas as pd

    from etc.data.labels import class_names
    from etc.deploy.segment_video import segment_video

    cfg, ckpt, video, decoded, expected = trained
    out = tmp_path / "out.mp4"
    r = segment_video(cfg, video, ckpt, out, flicker=True, labels_out=tmp_path / "labels.h5", progress=False)
    h, w = decoded[0].shape[:2]
    frames = [np.asarray(f) for f in imageio.get_reader(out, format="FFMPEG")]
    assert r["frames"] == len(frames) == len(decoded)
    assert frames[0].shape[:2] == (h, 2 * w) and r["size"] == [h, 2 * w]  # overlay | flicker map
    with h5py.File(tmp_path / "labels.h5") as h5:
        assert np.array_equal(h5["labels"][()], expected)
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table["frame"]) == list(range(len(decoded)))
    assert np.isnan(table["flicker_pct"][0]) and table["flicker_pct"][1:].between(0, 100).all()
    shares = table[[f"share_{n.replace(' ', '_')}" for n in class_names("synthetic")]].sum(axis=1)
    assert np.allclose(shares, 100, atol=1e-2)
    assert (table["latency_ms"] > 0).all() and r["fps"] > 0
    assert 0 <= r["flicker_pct"] <= 100


def test_a_folder_is_read_in_the_order_of_the_numbers_in_the_names(trained, tmp_path):
    from etc.core.io import read_png, write_png
    from etc.deploy.segment_video import segment_video

    cfg, ckpt, _, decoded, expected = trained
    for i, img in enumerate(decoded):  # frame_8 … frame_13: name order is not number order
        write_png(tmp_path / "frames" / f"frame_{i + 8}.png", img)
    r = segment_video(cfg, tmp_path / "frames", ckpt, tmp_path / "o.mp4", labels_out=tmp_path / "labels",
                      estimator=None, progress=False)
    got = np.stack([read_png(p) for p in sorted((tmp_path / "labels").glob("*.png"))])
    assert np.array_equal(got, expected) and r["flicker_pct"] is None
    assert len(np.unique(expected)) > 1  # an untrained-looking constant map would prove little


def test_resizing_and_bad_inputs(trained, tmp_path):
    from etc.deploy.segment_video import segment_video
    from etc.models import build_model
    from etc.models.checkpoint import load_checkpoint, save_checkpoint

    cfg, ckpt, video, _, _ = trained
    r = segment_video(cfg, video, ckpt, tmp_path / "small.mp4", size=(24, 40), max_frames=3, estimator="dis:fast",
                      progress=False)
    assert r["frames"] == 3 and r["size"] == [24, 40]
    (tmp_path / "empty").mkdir()
    with pytest.raises(EtcError, match="holds no frames"):
        segment_video(cfg, tmp_path / "empty", ckpt, tmp_path / "x.mp4", progress=False)
    state = load_checkpoint(ckpt)
    state.update(num_classes=5, model=build_model({**state["spec"], "pretrained": None}, 5).state_dict())
    save_checkpoint(tmp_path / "five.pt", state)
    with pytest.raises(EtcError, match="predicts 5 classes, but its dataset synthetic has 19"):
        segment_video(cfg, video, tmp_path / "five.pt", tmp_path / "x.mp4", progress=False)
    (tmp_path / "notes.mp4").write_text("not a video")
    res = subprocess.run([sys.executable, "-m", "etc", "segment-video", str(tmp_path / "notes.mp4"), "--model", str(ckpt),
                          "--out", str(tmp_path / "x.mp4")], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "is not a video" in res.stderr, res.stderr
    assert not (tmp_path / "x.mp4").exists()
