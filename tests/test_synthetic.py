"""The synthetic set: exact flow and occlusion, determinism, layout."""

import hashlib
import json

import numpy as np
import pytest
import torch

from etc.data.clips import list_clips, synthetic_dense_path
from etc.data.flowpng import encode_flow, read_flow_png, write_flow_png
from etc.data.synthetic import CLASSES, make_synthetic
from etc.errors import EtcError
from etc.flow.warp import warp_labels
from etc.io import read_png


def _flows(root, clip, t, kind):
    return read_flow_png(synthetic_dense_path(root, clip.split, clip.extra["city"], clip.extra["seq"], clip.frames[t].number, kind))


def _warp(labels, flow):
    return warp_labels(torch.from_numpy(labels.astype(np.int64))[None], torch.from_numpy(flow).permute(2, 0, 1)[None])[0].numpy()


def test_exact_flow_reproduces_labels_on_valid_pixels(synthetic_tree):
    checked = 0
    for split in ("train", "val"):
        for clip in list_clips("synthetic", synthetic_tree, split):
            labels = [read_png(f.dense_label) for f in clip.frames]
            for t in range(len(clip) - 1):
                fw, vfw = _flows(synthetic_tree, clip, t, "flow_fw")
                bw, vbw = _flows(synthetic_tree, clip, t + 1, "flow_bw")
                assert np.array_equal(_warp(labels[t + 1], fw)[vfw], labels[t][vfw])
                assert np.array_equal(_warp(labels[t], bw)[vbw], labels[t + 1][vbw])
                # and the invalid pixels are really occluded or leaving: most of them disagree
                checked += int(vfw.sum())
    assert checked > 0


def test_images_agree_up_to_noise_and_flicker(synthetic_tree):
    clip = list_clips("synthetic", synthetic_tree, "train")[0]
    imgs = [read_png(f.image, color=True).astype(np.float32) / 255 for f in clip.frames]
    warped_err, raw_err = [], []
    for t in range(len(clip) - 1):
        fw, v = _flows(synthetic_tree, clip, t, "flow_fw")
        nxt = torch.from_numpy(imgs[t + 1]).permute(2, 0, 1)[None]
        from etc.flow.warp import warp_backward

        w = warp_backward(nxt, torch.from_numpy(fw).permute(2, 0, 1)[None], mode="nearest")[0].permute(1, 2, 0).numpy()
        # compare means to cancel the per-frame gain roughly: residual is noise + gain
        warped_err.append(np.abs(w - imgs[t])[v].mean())
        raw_err.append(np.abs(imgs[t + 1] - imgs[t]).mean())
    # noise σ ≤ 0.16 per frame → |difference| of two noisy samples ≲ 0.2 on average
    assert max(warped_err) < 0.22
    assert np.mean(warped_err) < np.mean(raw_err)


def test_flow_is_nonuniform_and_there_is_occlusion(synthetic_tree):
    distinct, occluded = set(), 0
    for clip in list_clips("synthetic", synthetic_tree, "train"):
        for t in range(len(clip) - 1):
            fw, v = _flows(synthetic_tree, clip, t, "flow_fw")
            distinct |= set(np.unique(fw[..., 0]).tolist())
            occluded += int((~v).sum())
    assert len(distinct) >= 3  # parallax: layers and ground rows move at different speeds
    assert occluded > 0


def test_layout_and_label_ids(synthetic_tree):
    meta = json.loads((synthetic_tree / "synthetic.json").read_text())
    assert meta["labelled_index"] == 6 * 19 // 30
    for split, n in (("train", 2), ("val", 1)):
        clips = list_clips("synthetic", synthetic_tree, split)
        assert len(clips) == n
        for clip in clips:
            numbers = [f.number for f in clip.frames]
            assert len(clip) == 6 and numbers == list(range(numbers[0], numbers[0] + 6)) and numbers[0] >= 100
            assert clip.labelled == (meta["labelled_index"],)
            lab = read_png(clip.frames[clip.labelled[0]].label)
            assert np.array_equal(lab, read_png(clip.frames[clip.labelled[0]].dense_label))
            assert set(np.unique(lab).tolist()) <= set(CLASSES)
    assert len(list((synthetic_tree / "gtFine").rglob("*.png"))) == 3


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_identical_bytes_different_seed_differs(tmp_path):
    kw = dict(train_clips=1, val_clips=1, frames=3, height=32, width=64)
    make_synthetic(tmp_path / "a", seed=5, **kw)
    make_synthetic(tmp_path / "b", seed=5, **kw)
    make_synthetic(tmp_path / "c", seed=6, **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    # a rerun with the same parameters does nothing; other parameters are refused
    assert "nothing to do" in make_synthetic(tmp_path / "a", seed=5, **kw)
    with pytest.raises(EtcError, match="other parameters"):
        make_synthetic(tmp_path / "a", seed=7, **kw)


def test_flow_png_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    flow = (rng.integers(-20000, 20000, (5, 7, 2)) / 64.0).astype(np.float32)
    valid = rng.random((5, 7)) > 0.5
    write_flow_png(tmp_path / "f.png", flow, valid)
    back, v = read_flow_png(tmp_path / "f.png")
    assert np.array_equal(back, flow) and np.array_equal(v, valid)
    with pytest.raises(ValueError):
        encode_flow(np.full((1, 1, 2), 600.0), np.ones((1, 1), bool))
