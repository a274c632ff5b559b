import numpy as np
import pytest
import torch

from etc.metrics.consistency import PooledTC, video_consistency
from etc.metrics.miou import confusion, iou_per_class, miou


def test_miou_against_hand_computed_confusion():
    gt = np.array([[0, 0, 1, 255], [1, 1, 2, 2]], np.uint8)
    pr = np.array([[0, 1, 1, 3], [1, 0, 2, 0]], np.uint8)
    cm = confusion(pr, gt, 5)
    # rows gt, cols pred; the ignore pixel (pred 3) is not counted
    expect = np.zeros((5, 5), int)
    expect[0, 0], expect[0, 1] = 1, 1
    expect[1, 1], expect[1, 0] = 2, 1
    expect[2, 2], expect[2, 0] = 1, 1
    assert np.array_equal(cm, expect)
    iou = iou_per_class(cm)
    # class 0: I=1, U=2+3-1=4 ; class 1: I=2, U=3+3-2=4 ; class 2: I=1, U=2+1-1=2
    assert iou[:3] == pytest.approx([1 / 4, 2 / 4, 1 / 2])
    assert np.isnan(iou[3]) and np.isnan(iou[4])  # absent classes (3 was only predicted on ignore)
    assert miou(cm) == pytest.approx(100 * (0.25 + 0.5 + 0.5) / 3)


def _shift_flow(h, w, dx, dy):
    f = torch.zeros(2, h, w)
    f[0], f[1] = dx, dy
    return f


def test_tc_of_exactly_moving_labels_is_100_with_occlusion_excluded():
    rng = np.random.default_rng(0)
    big = np.kron(rng.integers(0, 4, (8, 10)), np.ones((4, 4), int)).astype(np.uint8)
    p_t = big[4:20, 4:36]
    p_n = big[2:18, 1:33]  # content at p in t is at p + (3, 2) in t+1
    tc = PooledTC(4)
    tc.update(p_t, p_n, _shift_flow(16, 32, 3, 2))
    assert tc.value() == pytest.approx(100.0)
    # a wrong flow lowers it
    tc_wrong = PooledTC(4)
    tc_wrong.update(p_t, p_n, _shift_flow(16, 32, 0, 0))
    assert tc_wrong.value() < 80


def test_tc_constant_prediction_is_100_and_random_is_low():
    h, w = 24, 32
    const = PooledTC(5)
    rand = PooledTC(5)
    rng = np.random.default_rng(1)
    for _ in range(3):
        const.update(np.full((h, w), 2, np.uint8), np.full((h, w), 2, np.uint8), _shift_flow(h, w, 1, 0))
        rand.update(rng.integers(0, 5, (h, w)).astype(np.uint8), rng.integers(0, 5, (h, w)).astype(np.uint8), _shift_flow(h, w, 1, 0))
    assert const.value() == 100.0
    gt = rng.integers(0, 5, (h, w)).astype(np.uint8)
    assert miou(confusion(np.full((h, w), 2, np.uint8), gt, 5)) < 10  # consistent, but wrong
    assert rand.value() < 20  # independent uniform labels over 5 classes: I/U ≈ 1/9


def test_tc_occ_excludes_masked_pixels():
    p_t = np.zeros((4, 4), np.uint8)
    p_n = np.zeros((4, 4), np.uint8)
    p_n[0, 0] = 1
    flow = torch.zeros(2, 4, 4)
    plain, occ = PooledTC(2), PooledTC(2)
    plain.update(p_t, p_n, flow)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    occ.update(p_t, p_n, flow, exclude=mask)
    assert plain.value() < 100 and occ.value() == 100
    assert plain.changed_pct() == pytest.approx(100 / 16) and occ.changed_pct() == 0


def test_mvc_hand_made_three_frames():
    gt = np.zeros((3, 2, 2), np.uint8)
    gt[1, 0, 0] = 1  # pixel (0,0): GT not constant -> not counted
    gt[:, 1, 1] = 255  # ignore -> not counted
    pred = np.zeros((3, 2, 2), np.uint8)
    pred[2, 0, 1] = 3  # (0,1): prediction changes
    pred[:, 1, 0] = 4  # (1,0): constant but wrong
    vc, acc = video_consistency(pred, gt, 3)
    # GT-constant pixels: (0,1), (1,0); pred constant on (1,0) only; correct on none of those
    assert vc == [0.5] and acc == [0.0]
    vc2, acc2 = video_consistency(pred, gt, 2)
    assert len(vc2) == 2
    assert video_consistency(pred, gt, 4) == ([], [])


def test_tc_occ_of_ground_truth_with_exact_flow_is_100(synthetic_tree, tmp_path):
    from etc.config import load_config
    from etc.data.clips import list_clips, read_label
    from etc.flow.precompute import precompute_flow
    from etc.flow.store import FlowStore

    cfg = load_config(None, {"dataset": {"root": str(synthetic_tree)}})
    precompute_flow(cfg, "val", tmp_path / "val.h5", estimator="gt", progress=False)
    store = FlowStore(tmp_path / "val.h5")
    tc, tc_occ = PooledTC(19), PooledTC(19)
    for clip in list_clips("synthetic", synthetic_tree, "val"):
        gt = [read_label(f.dense_label, "synthetic") for f in clip.frames]
        for t in range(len(clip) - 1):
            flow, occ = store.read(clip.name, t, t + 1)
            tc.update(gt[t], gt[t + 1], flow)
            tc_occ.update(gt[t], gt[t + 1], flow, exclude=occ.numpy())
    assert tc_occ.value() == pytest.approx(100.0)
    assert tc.value() < 100.0  # occluded pixels change label even for perfect predictions
