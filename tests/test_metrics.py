import numpy as np
import pytest
import torch

from etc.evaluate.metrics.consistency import PooledTC, video_consistency, vspw_video_consistency
from etc.evaluate.metrics.miou import confusion, iou_per_class, miou


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
    from etc.core.config import load_config
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


def test_tc_all_classes_averaging_counts_absent_classes_as_zero():
    p_t = np.array([[0, 0, 1, 1]], np.uint8)
    p_n = np.array([[0, 1, 1, 1]], np.uint8)
    tc = PooledTC(4)
    tc.update(p_t, p_n, torch.zeros(2, 1, 4))
    # class 0: I=1, U=2 ; class 1: I=2, U=3 ; classes 2, 3 absent
    assert tc.value() == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)
    assert tc.value("all") == pytest.approx(100 * (1 / 2 + 2 / 3) / 4)
    with pytest.raises(ValueError):
        tc.value("some")


def _cfg(windows=(8, 16), dataset="synthetic"):
    from etc.core.config import load_config

    return load_config(None, {"dataset": {"name": dataset}, "evaluate": {"vc_windows": list(windows)}})


def test_table_columns_come_from_the_metric_objects():
    from etc.evaluate.metrics import build_metrics, table_columns

    cols = table_columns(build_metrics(_cfg((4, 8))))
    keys = [c.key for c in cols]
    assert keys == ["miou", "tc", "tc_all", "tc_occ", "delta_miou", "delta_tc", "delta_tc_all", "flicker_pct",
                    "mvc4", "mvc4_acc", "params_m", "gflops", "device", "inference", "flow_train",
                    "flow_eval"]
    assert "mvc8" not in keys  # the table shows the first configured window, whatever it is
    headers = {c.key: c.header for c in cols}
    assert "published" in headers["tc_all"] and "published" not in headers["tc"]  # which one to compare
    results = {}
    for m in build_metrics(_cfg((4, 8))):
        results.update(m.result())
    assert {"mvc4", "mvc8", "mvc8_etc", "mvc8_acc", "tc_all"} <= set(results)  # every window is in the JSON
    # VSPW publishes mVC8 and mVC16: both in its table, in VSPW's form
    vspw = [c.key for c in table_columns(build_metrics(_cfg((8, 16), dataset="vspw")))]
    assert {"mvc8", "mvc16", "mvc8_acc"} <= set(vspw) and not any(k.endswith("_etc") for k in vspw)


def _clip(pred, dense=None, flow=None, calls=None):
    from etc.evaluate.metrics import ClipData

    def reader(t):
        if calls is not None:
            calls.append(t)
        f = torch.zeros(2, *pred.shape[1:]) if flow is None else flow
        return f, torch.zeros(pred.shape[1:], dtype=torch.bool)

    labels = {} if dense is None else {0: dense[0]}
    return ClipData("c", pred, labels, dense, reader)


def test_each_pair_flow_is_read_and_warped_once_for_all_metrics():
    from etc.evaluate.metrics import build_metrics

    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, (5, 6, 8)).astype(np.uint8)
    calls = []
    metrics = build_metrics(_cfg((2,)))
    clip = _clip(pred, dense=pred.copy(), calls=calls)
    for m in metrics:
        m.update(clip)
    assert sorted(calls) == [0, 1, 2, 3]  # 4 pairs, each read once for TC, TC-occ, per-clip, flicker, GT TC
    r = {}
    for m in metrics:
        r.update(m.result())
    assert r["tc"] == r["tc_ground_truth"] == r["tc_per_clip"]["c"] and r["miou"] == 100.0


def test_a_new_metric_is_one_class_and_its_column_reaches_the_table():
    from etc.evaluate.metrics import Column, Metric, build_metrics, table_columns
    from etc.report.table import IDENTITY, results_table, to_markdown

    class ChangedPixels(Metric):
        columns = (Column("changed", "changed px", "detail", fmt=".0f", higher_is_better=False),)

        def __init__(self):
            self.n = 0

        def update(self, clip):
            self.n += int((clip.pred[1:] != clip.pred[:-1]).sum())

        def result(self):
            return {"changed": float(self.n)}

    metrics = [*build_metrics(_cfg()), ChangedPixels()]
    pred = np.zeros((3, 2, 2), np.uint8)
    pred[2, 0, 0] = 1
    for m in metrics:
        m.update(_clip(pred))
    row = {"model": "s", "ablation": "baseline"}
    for m in metrics:
        row.update(m.result())
    cols = [*IDENTITY, *table_columns(metrics)]
    md = to_markdown(results_table([row], cols), cols)
    header, _, line = (r.strip("| ").split(" | ") for r in md.splitlines())
    i = header.index("changed px")
    assert header[i - 1] == "mvc8_acc" and line[i] == "1"  # in its section, in its format


def test_results_table_deltas_and_markdown_formats():
    from etc.evaluate.metrics import build_metrics, table_columns
    from etc.report.table import IDENTITY, REFERENCE_COLUMNS, results_table, to_markdown

    rows = [{"model": "teacher", "ablation": "-", "miou": 80.0, "tc": 70.0, "device": "cpu"},
            {"model": "s", "ablation": "baseline", "miou": 60.0, "tc": 65.0, "flicker_pct": 3.0},
            {"model": "s", "ablation": "tl", "miou": 61.5, "tc": 68.25, "flicker_pct": 2.0}]
    cols = [*IDENTITY, *table_columns(build_metrics(_cfg(dataset="cityscapes"))), *REFERENCE_COLUMNS]
    df = results_table(rows, cols)
    assert list(df.columns) == [c.key for c in cols]
    assert df["delta_miou"].tolist()[1:] == [0.0, 1.5] and np.isnan(df["delta_miou"][0])
    assert df["delta_tc"].tolist()[2] == pytest.approx(3.25)
    assert df["ref_miou"].tolist()[1:] == [69.79, 71.72]
    plain = to_markdown(df, cols).splitlines()
    assert plain[4].startswith("| s | tl | 61.50 | 68.25 | – | – | +1.50 | +3.25 | – | 2.00 |")
    assert "**" not in "".join(plain)
    bold = to_markdown(df, cols, bold_best=True).splitlines()
    assert "| **80.00** |" in bold[2]  # best mIoU (higher is better)
    assert "| **2.00** |" in bold[4]  # least flicker (lower is better)
    assert "**+1.50**" in bold[4] and "**cpu**" not in bold[2]  # deltas too; text never


def test_unknown_metric_options_are_refused():
    from etc.evaluate.metrics.consistency import TemporalConsistency, VideoConsistency

    with pytest.raises(ValueError):
        VideoConsistency(8, form="vspw-typo")
    with pytest.raises(ValueError):
        TemporalConsistency("tc", 3, averaging="median")


# A straight port of VSPW's VC_perclip.py (VSPW-dataset/VSPW_code @ f86be0c; the VSPW
# implementation repository carries the same file): the script's body as a function of
# (DIR, Pred, clip_num), argv and prints dropped, the skips of hidden files kept.
def _get_common(list_, predlist, clip_num, h, w):
    accs = []
    for i in range(len(list_) - clip_num):
        global_common = np.ones((h, w))
        predglobal_common = np.ones((h, w))
        for j in range(1, clip_num):
            common = (list_[i] == list_[i + j])
            global_common = np.logical_and(global_common, common)
            pred_common = (predlist[i] == predlist[i + j])
            predglobal_common = np.logical_and(predglobal_common, pred_common)
        pred = (predglobal_common * global_common)
        acc = pred.sum() / global_common.sum()
        accs.append(acc)
    return accs


def _vc_perclip(DIR, Pred, clip_num, split="val.txt"):  # noqa: N803 - the script's names
    import os

    from PIL import Image

    with open(os.path.join(DIR, split)) as f:
        lines = f.readlines()
        videolist = [line[:-1] for line in lines]
    total_acc = []
    for video in videolist:
        if video[0] == ".":
            continue
        imglist = []
        predlist = []
        images = sorted(os.listdir(os.path.join(DIR, "data", video, "mask")))
        if len(images) <= clip_num:
            continue
        for imgname in images:
            if imgname[0] == ".":
                continue
            img = Image.open(os.path.join(DIR, "data", video, "mask", imgname))
            w, h = img.size
            img = np.array(img)
            imglist.append(img)
            pred = Image.open(os.path.join(Pred, video, imgname))
            pred = np.array(pred)
            predlist.append(pred)
        with np.errstate(invalid="ignore"):  # the script's 0/0 is NaN, skipped by nanmean
            accs = _get_common(imglist, predlist, clip_num, h, w)
        total_acc.extend(accs)
    Acc = np.array(total_acc)  # noqa: N806
    return np.nanmean(Acc)


def _persistent_labels(rng, t, h, w, values, change=0.15):
    """T×H×W blocky labels that mostly persist from frame to frame (so windows have constant
    pixels) and sometimes change block-wise."""
    blocks = values[rng.integers(0, len(values), (h // 2, w // 2))]
    out = []
    for _ in range(t):
        flip = rng.random(blocks.shape) < change
        blocks = np.where(flip, values[rng.integers(0, len(values), blocks.shape)], blocks)
        out.append(np.kron(blocks, np.ones((2, 2), blocks.dtype)))
    return np.stack(out).astype(np.uint8)


def test_vspw_mvc_equals_the_port_of_vc_perclip_on_random_clips():
    """Per clip and pooled, with void (255) and "others" (0) flickering in the ground truth and
    clips of T < n, T = n and T > n frames."""
    from etc.evaluate.metrics.consistency import VideoConsistency

    rng = np.random.default_rng(0)
    for n in (2, 3, 5):
        vc = VideoConsistency(n, "vspw")
        pooled = []
        for t in (n - 1, n, n + 1, n + 4, 9):
            gt = _persistent_labels(rng, t, 8, 10, np.array([0, 1, 2, 3, 255], np.uint8))
            pred = _persistent_labels(rng, t, 8, 10, np.arange(4, dtype=np.uint8), change=0.1)
            with np.errstate(invalid="ignore"):
                want = _get_common(list(gt), list(pred), n, 8, 10)
            got = vspw_video_consistency(pred, gt, n)
            assert got == [a for a in want if not np.isnan(a)]  # the same windows, the same values
            assert len(want) == max(t - n, 0)  # range(len - n): T ≤ n scores nothing
            pooled += want
            train_ids = np.where((gt == 0) | (gt == 255), 255, gt - 1).astype(np.uint8)  # reduce_zero_label
            clip = _clip(pred, dense=train_ids)
            clip.dense_stored = gt
            vc.update(clip)
        assert vc.result()[f"mvc{n}"] == pytest.approx(100 * np.nanmean(pooled), abs=1e-12)


def test_vspw_mvc_counts_void_and_skips_the_last_window_where_etc_form_does_not():
    """T = 4, n = 3: VSPW scores 1 window, etc's form 2; a constant void region whose prediction
    flickers counts against VSPW's mVC only."""
    gt = np.zeros((4, 1, 4), np.uint8)
    gt[:, 0, 2:] = 255  # void throughout
    pred = np.zeros((4, 1, 4), np.uint8)
    pred[1, 0, 3] = 1  # flicker on a void pixel
    assert vspw_video_consistency(pred, gt, 3) == [0.75]
    assert video_consistency(pred, gt, 3) == ([1.0, 1.0], [1.0, 1.0])
    assert vspw_video_consistency(pred, gt, 4) == [] and len(video_consistency(pred, gt, 4)[0]) == 1


def test_evaluate_on_vspw_reports_mvc_as_vc_perclip_reads_the_files(tmp_path):
    """End to end: a VSPW tree whose masks store "others" (0) and void (255) — one id apart
    after reduce_zero_label — evaluated by `etc evaluate` and by the port reading the mask and
    prediction PNGs, as the script does."""
    import cv2
    import h5py
    from PIL import Image

    from etc.core.config import load_config
    from etc.evaluate.evaluate import evaluate
    from etc.flow.precompute import precompute_flow

    rng = np.random.default_rng(3)
    root, preddir = tmp_path / "vspw", tmp_path / "pred"
    lengths = {"v_short": 4, "v_mid": 7, "v_long": 10}  # 4 ≤ n = 4 is skipped by both
    (root / "data").mkdir(parents=True)
    (root / "val.txt").write_text("".join(f"{v}\n" for v in lengths))
    predictions = {}
    for video, t in lengths.items():
        masks = _persistent_labels(rng, t, 32, 48, np.array([0, 0, 5, 9, 255], np.uint8))
        masks[:, :6, :6] = np.where(np.arange(t) % 2, 0, 255)[:, None, None]  # "others" ↔ void
        pred = _persistent_labels(rng, t, 32, 48, np.array([4, 8, 20], np.uint8), change=0.1)
        predictions[video] = pred
        for d in ("origin", "mask"):
            (root / "data" / video / d).mkdir(parents=True)
        (preddir / video).mkdir(parents=True)
        for i in range(t):
            name = f"{5 * i:08d}"
            assert cv2.imwrite(str(root / "data" / video / "origin" / f"{name}.jpg"),
                               rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
            mask = Image.fromarray(masks[i], mode="P")
            mask.putpalette(list(range(256)) * 3)
            mask.save(root / "data" / video / "mask" / f"{name}.png")
            Image.fromarray(pred[i]).save(preddir / video / f"{name}.png")
    cfg = load_config(None, {"dataset": {"name": "vspw", "root": str(root)}, "evaluate": {"vc_windows": [4, 3]}})
    precompute_flow(cfg, "val", tmp_path / "val.h5", progress=False)
    with h5py.File(tmp_path / "preds.h5", "w") as h5:
        for video, pred in predictions.items():
            h5[video] = pred
    r = evaluate(cfg, tmp_path / "preds.h5", tmp_path / "val.h5", tmp_path / "m.json", progress=False)
    for n in (4, 3):
        assert r[f"mvc{n}"] == pytest.approx(100 * _vc_perclip(root, preddir, n), abs=1e-12)
    assert r["mvc4"] != pytest.approx(r["mvc4_etc"])  # the forms differ on this data


@pytest.mark.parametrize("k", [19, 124])  # Cityscapes; VSPW's count takes the int32 path
def test_one_pass_pair_counts_equal_warp_labels_and_pooled_tc(k):
    """etc.evaluate.metrics.pair_counts against the independent path (warp_labels, then PooledTC on
    NumPy): the warped map to the pixel, and every count of TC, TC-occ and flicker, on flow with
    exact halves (the rounding rule), samples leaving the image, NaN and ±inf, and ground truth
    with void pixels in both frames."""
    from etc.evaluate.metrics.pair_counts import PairWarp
    from etc.flow.warp import warp_labels

    rng = np.random.default_rng(k)
    h, w = 23, 37
    for trial in range(6):
        a = rng.integers(0, k, (h, w)).astype(np.uint8)
        b = rng.integers(0, k, (h, w)).astype(np.uint8)
        if trial % 2:  # ground truth: void in both frames
            a[rng.random((h, w)) < 0.2] = 255
            b[rng.random((h, w)) < 0.2] = 255
        flow = torch.from_numpy(rng.normal(0, 8, (2, h, w)).astype(np.float32))
        flow[:, rng.random((h, w)) < 0.3] = torch.from_numpy(rng.integers(-9, 9, (2, 1)) + 0.5).float()  # halves
        flow[0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
        occ = rng.random((h, w)) < 0.25
        warp = PairWarp(flow, torch.from_numpy(occ))
        warped = warp_labels(torch.from_numpy(b.astype(np.int64))[None], flow[None])[0].numpy()
        assert np.array_equal(warp.warp(torch.from_numpy(b)).numpy(), warped)
        counts = warp.confusion(torch.from_numpy(a), torch.from_numpy(b), k).numpy()
        assert counts.shape == (2, k + 1, k) and counts.dtype == np.int64
        for exclude, cm in ((None, counts.sum(0)), (occ, counts[0])):
            ref, new = PooledTC(k), PooledTC(k)
            ref.update_warped(a, warped.astype(np.uint8), exclude)
            new.update_confusion(cm)
            assert np.array_equal(ref.inter, new.inter) and np.array_equal(ref.union, new.union)
            assert (ref.changed, ref.counted) == (new.changed, new.counted) and ref.counted > 0
