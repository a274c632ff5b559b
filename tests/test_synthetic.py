"""The synthetic set: exact flow and occlusion, determinism, layout, flow PNGs."""

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from etc.core.errors import EtcError
from etc.core.io import read_png, write_png
from etc.data.clips import list_clips, synthetic_dense_path
from etc.data.flowpng import encode_flow, read_flow_png, write_flow_png
from etc.data.synthetic import (
    CITIES,
    CLASSES,
    make_synthetic,
    render_clip,
    target_inside,
    valid_mask,
)
from etc.flow.warp import out_of_frame, warp_backward, warp_labels

# the tiny tree of conftest.synthetic_tree
TRAIN, VAL, T, H, W = 2, 1, 6, 48, 96


def _flow(root, clip, t, kind):
    city, seq = clip.extra["city"], clip.extra["seq"]
    return read_flow_png(synthetic_dense_path(root, clip.split, city, seq, clip.frames[t].number, kind))


def _t(flow_hw2):
    return torch.from_numpy(np.ascontiguousarray(flow_hw2)).permute(2, 0, 1)[None]


def _warp_labels(labels, flow):
    return warp_labels(torch.from_numpy(labels.astype(np.int64))[None], _t(flow))[0].numpy()


def _warp_image(img, flow):
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    return warp_backward(x, _t(flow), mode="nearest")[0].permute(1, 2, 0).numpy()


def _all_clips(root):
    return [c for split in ("train", "val") for c in list_clips("synthetic", root, split)]


def test_exact_flow_reproduces_labels_on_valid_pixels(synthetic_tree):
    checked = 0
    for clip in _all_clips(synthetic_tree):
        labels = [read_png(f.dense_label) for f in clip.frames]
        for t in range(len(clip) - 1):
            fw, vfw = _flow(synthetic_tree, clip, t, "flow_fw")
            bw, vbw = _flow(synthetic_tree, clip, t + 1, "flow_bw")
            assert np.array_equal(_warp_labels(labels[t + 1], fw)[vfw], labels[t][vfw])
            assert np.array_equal(_warp_labels(labels[t], bw)[vbw], labels[t + 1][vbw])
            # the flow is not trivially zero: warping without it would not be exact
            assert not np.array_equal(labels[t + 1][vfw], labels[t][vfw])
            checked += int(vfw.sum()) + int(vbw.sum())
    assert checked > 0.8 * 2 * (TRAIN + VAL) * (T - 1) * H * W


def test_clean_render_is_exact_and_valid_mask_is_tight():
    """Before noise, warping reproduces images and layer instances exactly on valid pixels;
    on in-frame invalid pixels a different layer instance is visible (a real occlusion)."""
    rng = np.random.default_rng(3)
    images, labels, inst, fw, bw = render_clip(rng, T, H, W)
    occluded = 0
    for t in range(T - 1):
        for a, b, flow in ((t, t + 1, fw[t]), (t + 1, t, bw[t + 1])):
            v = valid_mask(inst, a, b, flow)
            assert np.array_equal(_warp_image(images[b], flow)[v], images[a][v])
            warped_inst = _warp_labels(inst[b], flow)
            assert np.array_equal(warped_inst[v], inst[a][v])
            occ = ~v & target_inside(flow)
            assert np.all(warped_inst[occ] != inst[a][occ])
            # out-of-frame pixels are exactly those the warp module calls out of frame
            assert np.array_equal(out_of_frame(_t(flow))[0].numpy(), ~target_inside(flow))
            occluded += int(occ.sum())
    assert occluded > 0


def test_images_agree_up_to_noise_and_flicker(synthetic_tree):
    meta = json.loads((synthetic_tree / "synthetic.json").read_text())
    for clip in _all_clips(synthetic_tree):
        photo = meta["clips"][f"{clip.split}/{clip.name}"]
        sigma, gain = photo["noise_sigma"], photo["gain"]
        assert photo["first_frame"] == clip.frames[0].number
        assert 0.04 <= sigma <= 0.16 and all(0.8 <= g <= 1.2 for g in gain)
        imgs = [read_png(f.image, color=True).astype(np.float32) / 255 for f in clip.frames]
        for t in range(len(clip) - 1):
            fw, v = _flow(synthetic_tree, clip, t, "flow_fw")
            warped = _warp_image(imgs[t + 1], fw)
            err = np.abs(warped - imgs[t])[v].mean()
            raw = np.abs(imgs[t + 1] - imgs[t])[v].mean()
            # difference of two N(0, σ²) samples: E|·| = 2σ/√π; plus the gain change on
            # intensities ≤ 1, plus quantisation; clipping at 0/1 only lowers it
            bound = 2 * sigma / math.sqrt(math.pi) * 1.1 + abs(gain[t + 1] - gain[t]) + 0.01
            assert err < bound, (clip.name, t, err, bound)
            assert err < raw  # motion explains most of the frame difference


def test_flow_is_nonuniform_and_there_is_occlusion(synthetic_tree):
    occluded, leaving = 0, 0
    for clip in _all_clips(synthetic_tree):
        labels = [read_png(f.dense_label) for f in clip.frames]
        for t in range(len(clip) - 1):
            fw, v = _flow(synthetic_tree, clip, t, "flow_fw")
            assert len(np.unique(fw[..., 0])) >= 3  # layers move at different speeds
            road = labels[t] == 7
            # parallax inside one layer: the road's rows move at different speeds
            assert len(np.unique(fw[..., 0][road])) >= 2
            assert np.all(fw == np.round(fw))  # integer motion
            inside = target_inside(fw)
            occluded += int((~v & inside).sum())
            leaving += int((~inside).sum())
            assert not np.any(v & ~inside)
    assert occluded > 0 and leaving > 0


def test_layout_and_label_ids(synthetic_tree):
    meta = json.loads((synthetic_tree / "synthetic.json").read_text())
    ann = T * 19 // 30
    assert meta["labelled_index"] == ann == 3
    assert (meta["frames"], meta["height"], meta["width"]) == (T, H, W)
    assert meta["cities"] == {s: list(c) for s, c in CITIES.items()}
    assert {int(k) for k in meta["classes"]} == set(CLASSES)
    assert abs(sum(meta["class_pixel_share"].values()) - 1) < 1e-3
    for split, n in (("train", TRAIN), ("val", VAL)):
        clips = list_clips("synthetic", synthetic_tree, split)
        assert len(clips) == n
        assert {c.extra["city"] for c in clips} <= set(CITIES[split])
        for clip in clips:
            numbers = [f.number for f in clip.frames]
            assert numbers == list(range(numbers[0], numbers[0] + T)) and 100 <= numbers[0] < 900
            assert clip.labelled == (ann,)
            lab = read_png(clip.frames[ann].label)
            assert lab.dtype == np.uint8 and lab.shape == (H, W)
            assert np.array_equal(lab, read_png(clip.frames[ann].dense_label))
            for i, f in enumerate(clip.frames):
                img = read_png(f.image)
                assert img.shape == (H, W, 3) and img.dtype == np.uint8
                assert set(np.unique(read_png(f.dense_label)).tolist()) <= set(CLASSES)
                city, seq = clip.extra["city"], clip.extra["seq"]
                fw = synthetic_dense_path(synthetic_tree, split, city, seq, f.number, "flow_fw")
                bw = synthetic_dense_path(synthetic_tree, split, city, seq, f.number, "flow_bw")
                assert fw.is_file() == (i < T - 1) and bw.is_file() == (i > 0)
    # train clips alternate between the two cities, seq counts within a city
    names = sorted(c.name for c in list_clips("synthetic", synthetic_tree, "train"))
    assert names == ["northfield_000000", "southbank_000000"]
    n = TRAIN + VAL
    count = lambda sub, pat: len(list((synthetic_tree / sub).rglob(pat)))  # noqa: E731
    assert count("gtFine", "*.png") == n
    assert count("leftImg8bit_sequence", "*_leftImg8bit.png") == n * T
    assert count("dense", "*_labelIds.png") == n * T
    assert count("dense", "*_flow_fw.png") == count("dense", "*_flow_bw.png") == n * (T - 1)
    assert not [p for p in synthetic_tree.rglob("*") if p.name.startswith(".")]


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_identical_bytes_different_seed_differs(tmp_path):
    kw = dict(train_clips=2, val_clips=1, frames=3, height=32, width=64)
    make_synthetic(tmp_path / "a", seed=5, **kw)
    make_synthetic(tmp_path / "b", seed=5, **kw)
    make_synthetic(tmp_path / "c", seed=6, **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    # not only the frame numbers differ: the scenes do
    first = lambda r: read_png(sorted((r / "dense/train/northfield").glob("*labelIds.png"))[0])  # noqa: E731
    assert not np.array_equal(first(tmp_path / "a"), first(tmp_path / "c"))


def test_rerun_skips_other_parameters_refused_interrupted_run_redone(tmp_path):
    kw = dict(train_clips=1, val_clips=1, frames=2, height=32, width=32, seed=1)
    root = tmp_path / "s"
    summary = make_synthetic(root, **kw)
    assert "1 train + 1 val clips" in summary and "road" in summary and "%" in summary
    before = _digest(root)
    meta = root / "synthetic.json"
    stamp = meta.stat().st_mtime_ns
    assert "nothing to do" in make_synthetic(root, **kw)
    assert meta.stat().st_mtime_ns == stamp and _digest(root) == before
    with pytest.raises(EtcError, match="other parameters.*seed 1 → 7.*delete"):
        make_synthetic(root, **{**kw, "seed": 7})
    # an interrupted run (no synthetic.json) with stale files is redone cleanly
    meta.unlink()
    stale = root / "dense" / "train" / "northfield" / "northfield_000005_000100_labelIds.png"
    write_png(stale, np.zeros((32, 32), np.uint8))
    (root / "gtFine" / "val" / "westmoor" / ".x.tmp.png").write_bytes(b"")
    make_synthetic(root, **kw)
    assert not stale.exists() and _digest(root) == before


def test_flow_png_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    flow = (rng.integers(-20000, 20000, (5, 7, 2)) / 64.0).astype(np.float32)
    valid = rng.random((5, 7)) > 0.5
    write_flow_png(tmp_path / "f.png", flow, valid)
    raw = read_png(tmp_path / "f.png")
    assert raw.dtype == np.uint16 and raw.shape == (5, 7, 3)  # KITTI: R = u·64 + 2¹⁵, B = valid
    assert np.array_equal(raw[..., 0], (flow[..., 0] * 64 + 32768).astype(np.uint16))
    assert np.array_equal(raw[..., 2], valid.astype(np.uint16))
    back, v = read_flow_png(tmp_path / "f.png")
    assert back.dtype == np.float32 and np.array_equal(back, flow) and np.array_equal(v, valid)
    with pytest.raises(ValueError):
        encode_flow(np.full((1, 1, 2), 600.0), np.ones((1, 1), bool))
    with pytest.raises(ValueError):
        encode_flow(np.full((1, 1, 2), np.nan), np.ones((1, 1), bool))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(EtcError, match="bad.png"):
        read_flow_png(tmp_path / "bad.png")
    write_png(tmp_path / "gray.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(EtcError, match="gray.png"):
        read_flow_png(tmp_path / "gray.png")
