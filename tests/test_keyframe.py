"""Keyframe inference (etc.infer.keyframe through etc.infer.predict): the per-frame limit, propagation with
the exact flow of a purely translating scene, causality, the latency record, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from etc.core.config import load_config
from etc.core.errors import EtcError
from etc.infer.keyframe import KeyframeOptions, last_keyframe, schedule

SMALL = {"students": {"s": {"backbone": "tiny", "width": 0.25, "head_channels": 8}},
         "train": {"student": {"iterations": 1, "batch_size": 2}},
         "infer": {"batch_size": 4, "warmup": 0, "fused_labels": False}}


def small_config(root, **infer):
    return load_config(None, {**SMALL, "dataset": {"root": str(root), "window": [-1, 1]},
                              "infer": {**SMALL["infer"], **infer}})


@pytest.fixture(scope="module")
def student(synthetic_tree, tmp_path_factory):
    """A one-iteration student whose classifier is redrawn large (seeded), so that its labels
    follow the image's structure (a near-constant map would match any shift)."""
    from etc.models.checkpoint import load_checkpoint, save_checkpoint
    from etc.train.loop import train

    ckpt = tmp_path_factory.mktemp("kf") / "s.pt"
    train(small_config(synthetic_tree), "s/baseline", ckpt, progress=False)
    state = load_checkpoint(ckpt)
    weight = state["model"]["classifier.weight"]
    state["model"]["classifier.weight"] = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))
    state["model"]["classifier.bias"].zero_()
    save_checkpoint(ckpt, state)
    return ckpt


def run(cfg, ckpt, out, **options):
    from etc.infer.predict import infer, read_predictions

    info = infer(cfg, ckpt, "val", out, progress=False, keyframe=KeyframeOptions(**options) if options else None)
    return read_predictions(out), info


def test_the_schedule_counts_from_the_anchor_and_frame_zero_is_always_a_keyframe():
    assert schedule(7, 3) == [0, 0, 0, 3, 3, 3, 6]
    assert schedule(7, 3, start=2) == [0, 0, 2, 2, 2, 5, 5]
    assert all(last_keyframe(t, 4, 1) <= t for t in range(12))


@pytest.mark.parametrize("fused", [False, True])
def test_interval_one_is_per_frame_inference_byte_for_byte(synthetic_tree, student, tmp_path, fused):
    cfg = small_config(synthetic_tree, fused_labels=fused)
    plain, _ = run(cfg, student, tmp_path / "plain.h5")
    one, info = run(cfg, student, tmp_path / "one.h5", interval=1, propagate="features")
    assert plain.keys() == one.keys()
    assert all(plain[k].dtype == one[k].dtype and plain[k].tobytes() == one[k].tobytes() for k in plain)
    assert info["keyframe_interval"] == 1
    # keyframes of a K > 1 run get the per-frame labels too, by either propagation
    for propagate in ("scores", "features"):
        kf, info = run(cfg, student, tmp_path / f"{propagate}.h5", interval=3, propagate=propagate)
        for name, labels in plain.items():
            assert np.array_equal(kf[name][::3], labels[::3])
        assert info["batch_size"] == 1 and info["keyframe_interval"] == 3 and info["propagate"] == propagate


def translating_tree(src, dst, motion):
    """A copy of the synthetic set whose validation clips show one textured canvas seen through a
    window moving by ``motion`` = (dx, dy) pixels per frame: the scene only translates, and the
    dense/ flow is rewritten to that exact motion (valid where the target is inside)."""
    from etc.core.io import read_png, write_png
    from etc.data.clips import list_clips, synthetic_dense_path
    from etc.data.flowpng import write_flow_png

    shutil.copytree(src, dst)
    dx, dy = motion
    rng = np.random.default_rng(1)
    for clip in list_clips("synthetic", dst, "val"):
        h, w = read_png(clip.frames[0].image).shape[:2]
        n = len(clip)
        blocks = rng.integers(0, 256, ((h + abs(dy) * n) // 4 + 2, (w + abs(dx) * n) // 4 + 2, 3), dtype=np.uint8)
        canvas = np.kron(blocks, np.ones((4, 4, 1), np.uint8))  # 4×4-pixel blocks: structure a network sees
        for t, frame in enumerate(clip.frames):
            write_png(frame.image, canvas[t * dy: t * dy + h, t * dx: t * dx + w])
        ys, xs = np.mgrid[0:h, 0:w]
        for kind, (u, v) in (("flow_fw", (-dx, -dy)), ("flow_bw", (dx, dy))):
            flow = np.broadcast_to(np.array([u, v], np.float32), (h, w, 2)).copy()
            valid = (xs + u >= 0) & (xs + u < w) & (ys + v >= 0) & (ys + v < h)
            for frame in clip.frames:
                write_flow_png(synthetic_dense_path(dst, "val", clip.extra["city"], clip.extra["seq"],
                                                    frame.number, kind), flow, valid)
    return dst


def test_scores_propagated_with_the_exact_flow_are_the_keyframe_labels_shifted(synthetic_tree, student, tmp_path):
    dx, dy, K = 3, 1, 4
    root = translating_tree(synthetic_tree, tmp_path / "tree", (dx, dy))
    preds, _ = run(small_config(root), student, tmp_path / "kf.h5", interval=K, propagate="scores", estimator="gt")
    checked = 0
    for labels in preds.values():
        T, H, W = labels.shape
        assert np.bincount(labels[0].ravel()).max() < 0.8 * labels[0].size  # no near-constant map
        for t in range(T):
            k = last_keyframe(t, K)
            if k == t:
                continue
            s = t - k  # the scene point at p in frame t sat at p + s·(dx, dy) in frame k
            expected = labels[k, s * dy:, s * dx:]
            got = labels[t, : H - s * dy, : W - s * dx]
            assert np.array_equal(got, expected), f"frame {t}: {np.mean(got != expected):.4f} of pixels differ"
            assert not np.array_equal(labels[t], labels[k])  # the motion is visible: the test can fail
            checked += 1
    assert checked > 0


def test_features_propagated_with_the_exact_flow_are_the_keyframe_features_shifted(synthetic_tree, student):
    """DFF's warp at the feature stride (8): a motion of 8 pixels is one feature cell."""
    from etc.infer.keyframe import KeyframePredictor
    from etc.models.checkpoint import load_model_from_checkpoint

    model, _ = load_model_from_checkpoint(student)
    model.eval()
    feats = model.backbone_features(torch.randn(1, 3, 48, 96))
    seen = {}

    def head(f):
        seen["f"] = f
        return torch.zeros(1, 19, *f.shape[-2:])

    model.head_logits = head
    predictor = KeyframePredictor(model, KeyframeOptions(2, "features"),
                                  lambda clip, t, k, a, b: torch.tensor([16.0, 8.0]).view(1, 2, 1, 1).expand(1, 2, 48, 96))
    predictor.state, predictor.key_clip, predictor.key_pos = feats, "c", 0
    clip = type("C", (), {"name": "c"})()
    predictor(torch.zeros(1, 3, 48, 96), None, clip, 1, 0)
    f = seen["f"]  # F_{t→k} = (16, 8) px = (2, 1) cells: frame t's cell p is the keyframe's p + (2, 1)
    assert torch.allclose(f[..., : -1, : -2], feats[..., 1:, 2:], atol=1e-5)


def test_no_frame_reads_a_later_frame(synthetic_tree, student, tmp_path):
    from etc.core.io import read_png, write_png
    from etc.data.clips import list_clips

    root = translating_tree(synthetic_tree, tmp_path / "tree", (2, 1))  # labels that vary
    cfg = small_config(root)
    base, _ = run(cfg, student, tmp_path / "base.h5", interval=3, propagate="features", estimator="dis")
    clip = list_clips("synthetic", root, "val")[0]
    for changed in (2, 3):  # a propagated frame, then a keyframe: each turned upside down
        write_png(clip.frames[changed].image, np.ascontiguousarray(read_png(clip.frames[changed].image)[::-1, ::-1]))
        new, _ = run(cfg, student, tmp_path / f"new{changed}.h5", interval=3, propagate="features", estimator="dis")
        assert np.array_equal(new[clip.name][:changed], base[clip.name][:changed])
        assert not np.array_equal(new[clip.name][changed], base[clip.name][changed])  # the change is seen
        base = new  # the next change comes on top of this one


def test_the_timing_records_every_frame_after_warm_up(synthetic_tree, student, tmp_path):
    from etc.infer.predict import latency_summary

    cfg = small_config(synthetic_tree, warmup=2)
    _, info = run(cfg, student, tmp_path / "kf.h5", interval=3, propagate="scores", estimator="dis")
    record = json.loads((tmp_path / "kf.timing.json").read_text())
    assert len(record["frame_ms"]) == info["frames"] - 2  # batch 1: one span per frame
    a = np.array(record["frame_ms"])
    assert record["ms_per_frame_mean"] == pytest.approx(a.mean())
    assert record["ms_per_frame_p50"] <= record["ms_per_frame_p95"] <= record["ms_per_frame_max"] == a.max()
    assert latency_summary([1.0, 2.0, 3.0, 10.0]) == {"ms_per_frame_mean": 4.0, "ms_per_frame_p50": 2.5,
                                                      "ms_per_frame_p95": pytest.approx(8.95),
                                                      "ms_per_frame_p99": pytest.approx(9.79), "ms_per_frame_max": 10.0}
    split = latency_summary([9.0, 1.0, 2.0, 8.0], keyframes=[True, False, False, True])
    assert (split["ms_keyframe_p50"], split["ms_propagated_p50"]) == (8.5, 1.5)
    # a batched per-frame run: each frame its batch's share
    _, info = run(small_config(synthetic_tree, warmup=0), student, tmp_path / "pf.h5")
    assert len(info["frame_ms"]) == info["frames"]


def test_bad_keyframe_input_names_the_option(synthetic_tree, student, tmp_path):
    from etc.infer.keyframe import FlowToKeyframe, check_model

    with pytest.raises(EtcError, match="--keyframe-interval 0"):
        KeyframeOptions(0)
    with pytest.raises(EtcError, match="--keyframe-offset 3"):
        KeyframeOptions(3, offset=3)
    with pytest.raises(EtcError, match="--propagate features: architecture 'segformer'"):
        check_model(torch.nn.Conv2d(3, 3, 1), KeyframeOptions(2, "features"), "segformer")
    with pytest.raises(EtcError, match="--keyframe-flow-ckpt"):
        FlowToKeyframe("ptlflow:raft_small", None, torch.device("cpu"), synthetic_tree)
    with pytest.raises(EtcError, match="--flip"):
        run(small_config(synthetic_tree, flip=True), student, tmp_path / "x.h5", interval=2)
    from click.testing import CliRunner

    from etc.cli import cli

    res = CliRunner().invoke(cli, ["infer", "--model", str(student), "--out", str(tmp_path / "y.h5"),
                                   "--keyframe-interval", "0"])
    assert isinstance(res.exception, EtcError) and "--keyframe-interval 0" in str(res.exception)


def write_predictions(path, labels: dict, **attrs):
    """An `etc infer`-shaped HDF5: one T×H×W uint8 dataset per clip."""
    import h5py

    with h5py.File(path, "w") as h5:
        h5.attrs.update(attrs)
        for name, p in labels.items():
            h5.create_dataset(name, data=p.astype(np.uint8))
    return path


def test_a_sparse_set_scores_the_labelled_frame_at_every_offset(cityscapes_tree, tmp_path):
    from etc.data.clips import list_clips
    from etc.evaluate.keyframe_score import _labels, offset_miou
    from etc.evaluate.metrics.miou import confusion, miou
    from etc.infer.keyframe import anchor

    cfg = load_config(None, {"dataset": {"name": "cityscapes", "root": str(cityscapes_tree)}})
    clip = list_clips("cityscapes", cityscapes_tree, "val")[0]
    (L,) = clip.labelled
    K = 3
    for d in range(K):  # the anchor puts the labelled frame d frames after a keyframe
        start = anchor(clip, KeyframeOptions(K, offset=d))
        assert L - last_keyframe(L, K, start) == d
    gt = _labels(clip.frames[L].label, "cityscapes")
    T, (H, W) = len(clip), gt.shape
    files, expected = [], []
    for d in range(K):  # offset d: the labelled frame right, except a band of d·4 wrong rows
        p = np.zeros((T, H, W), np.uint8)
        p[L] = np.where(gt == 255, 0, gt)
        p[L, : 4 * d] = (p[L, : 4 * d] + 1) % 19
        files.append(write_predictions(tmp_path / f"d{d}.h5", {clip.name: p}, keyframe_interval=K, keyframe_offset=d))
        expected.append(miou(confusion(p[L], gt, 19)))
    r = offset_miou(cfg, files, K)
    assert r["keyframe_protocol"] == "labelled frame at every offset"
    assert r["miou_per_offset"] == {str(d): pytest.approx(v) for d, v in enumerate(expected)}
    assert r["miou_protocol"] == pytest.approx(np.mean(expected)) and expected[0] > expected[-1]
    with pytest.raises(EtcError, match="give 3 --predictions"):
        offset_miou(cfg, files[:2], K)
    with pytest.raises(EtcError, match="--keyframe-offset 1"):
        offset_miou(cfg, [files[0], files[0], files[2]], K)


def test_a_dense_set_scores_every_frame_and_reports_each_offset(synthetic_tree, tmp_path):
    from etc.data.clips import list_clips
    from etc.evaluate.keyframe_score import _labels, offset_miou

    cfg = load_config(None, {"dataset": {"root": str(synthetic_tree)}})
    K, preds = 3, {}
    for clip in list_clips("synthetic", synthetic_tree, "val"):
        gt = np.stack([_labels(f.dense_label, "synthetic") for f in clip.frames])
        p = np.where(gt == 255, 0, gt)
        p[[t for t in range(len(clip)) if t % K == 2]] = 0  # every offset-2 frame wrong
        preds[clip.name] = p
    r = offset_miou(cfg, [write_predictions(tmp_path / "p.h5", preds)], K)
    assert r["keyframe_protocol"] == "every frame"
    assert r["miou_per_offset"]["0"] == r["miou_per_offset"]["1"] == pytest.approx(100.0)
    assert r["miou_per_offset"]["2"] < 50 and 50 < r["miou_protocol"] < 100


def test_the_report_adds_keyframe_rows_their_latency_and_figures(tmp_path):
    from pathlib import Path

    import pandas as pd

    from etc.infer.predict import latency_summary
    from etc.plan.keyframe_rows import keyframe_rows
    from etc.plan.layout import REPORT_FIGURES
    from etc.plan.runs import run_names
    from etc.report.build import build_report

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "workflow/configs/smoke.yaml", {"keyframe": {"intervals": [3], "propagate": ["features"],
                                                                                 "fusion_runs": []}})
    rng = np.random.default_rng(0)

    def write(path, obj):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj))

    for run in run_names(cfg):
        write(tmp_path / "metrics" / f"{run}.json", {"run": run, "miou": float(rng.uniform(40, 60)), "tc": 70.0,
                                                      "iou": {"road": 80.0}, "tc_per_clip": {"a": 70.0}, "ms_per_frame": 2.0})
        (tmp_path / "curves" / run).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"iteration": [1, 2], "ce": [2.0, 1.0]}).to_csv(tmp_path / "curves" / f"{run}.csv", index=False)
    rows = keyframe_rows(cfg)
    assert [r["run"] for r in rows][-1] == "teacher · keyframe 3 · feature propagation, DFF-style, no flow fine-tuning · dis"
    for r in rows:
        k = r["interval"]
        ms = [9.0 if (i % k == 0) else 1.0 for i in range(12)]  # a keyframe every k frames
        flags = [i % k == 0 for i in range(12)]
        write(tmp_path / "kf" / f"{r['slug']}.json", {
            "run": r["run"], "miou": 50.0, "tc": 80.0, "iou": {"road": 70.0}, "tc_per_clip": {"a": 80.0},
            "miou_protocol": 55.0 - k, **latency_summary(ms, flags if k > 1 else None), "frame_ms": ms,
            "fps": 123.0, "ms_per_frame": 8.1})
    build_report(cfg, tmp_path / "metrics", tmp_path / "curves", tmp_path / "table.csv", tmp_path / "fig", tmp_path / "kf")
    table = pd.read_csv(tmp_path / "table.csv")
    kf = table[table["ablation"] == "keyframe 3 · feature propagation, DFF-style, no flow fine-tuning · dis"]
    assert list(kf["model"]) == ["teacher"] and float(kf["miou_protocol"].iloc[0]) == 52.0
    assert float(kf["ms_per_frame_p99"].iloc[0]) == pytest.approx(9.0) and float(kf["ms_per_frame_mean"].iloc[0]) == pytest.approx(11 / 3, abs=1e-4)  # CSV: 4 decimals
    assert (float(kf["ms_per_frame_p50"].iloc[0]), float(kf["ms_keyframe_p50"].iloc[0]),
            float(kf["ms_propagated_p50"].iloc[0])) == (1.0, 9.0, 1.0)
    per_frame = table[table["ablation"] == "tl_kd"]  # a per-frame row carries its streaming latency
    assert float(per_frame["ms_per_frame_p99"].iloc[0]) == pytest.approx(9.0) and float(per_frame["miou_protocol"].iloc[0]) == 54.0
    assert per_frame["ms_keyframe_p50"].isna().all()
    # the streamed latency is the table's only per-frame speed: batched throughput stays in the JSONs
    assert not {"fps", "ms_per_frame", "ms_per_frame_max"} & set(table.columns)
    assert "ms/frame stream (worst: p99 over frames)" in (tmp_path / "table.md").read_text()
    assert len(table) == len(run_names(cfg)) + 1
    assert sorted(p.stem for p in (tmp_path / "fig").glob("*.png")) == sorted(REPORT_FIGURES)
    with pytest.raises(EtcError, match="missing keyframe row"):
        (tmp_path / "kf" / f"{rows[-1]['slug']}.json").unlink()
        build_report(cfg, tmp_path / "metrics", tmp_path / "curves", tmp_path / "t2.csv", tmp_path / "fig", tmp_path / "kf")


def test_the_bench_keyframe_section_writes_latency_rows_and_ratios(synthetic_tree, tmp_path):
    from etc.bench.suite import Rows, bench_keyframe

    cfg = load_config(None, {**SMALL, "dataset": {"root": str(synthetic_tree), "window": [-1, 1]},
                             "teacher": {"backbone": "tiny", "width": 0.5, "head_channels": 8},
                             "train": {"teacher": {"iterations": 1, "batch_size": 2},
                                       "student": {"iterations": 1, "batch_size": 2}}})
    rows = Rows("cpu")
    bench_keyframe(rows, cfg, tmp_path, torch.device("cpu"), quick=True, interval=3)
    got = {r["metric"]: r["value"] for r in rows.rows}
    for run in ("teacher", "student", "teacher_k3_scores_dis", "teacher_k3_features_dis"):
        assert 0 < got[f"{run}_ms_mean"] <= got[f"{run}_ms_max"]
    assert got["teacher_k3_scores_dis_mean_over_teacher"] == pytest.approx(
        got["teacher_k3_scores_dis_ms_mean"] / got["teacher_ms_mean"])
    assert all(r["benchmark"] == "keyframe" for r in rows.rows)


def test_latency_streams_every_model_through_the_same_frames_in_turns(synthetic_tree, student, tmp_path, monkeypatch):
    """etc latency: each frame once through every model, the first model rotating from frame to
    frame; whole clips up to --frames; every run the same number of timed frames after warm-up;
    a keyframe run keeps its own schedule (it would raise on a frame whose keyframe it missed)."""
    from etc.bench import latency

    cfg = small_config(synthetic_tree, warmup=2)
    calls = []
    real = latency._Stream.__call__

    def spy(self, images, raw, clip, t, start):
        calls.append((self.name, clip.name, t))
        return real(self, images, raw, clip, t, start)

    monkeypatch.setattr(latency._Stream, "__call__", spy)
    monkeypatch.setattr(latency._Stream, "name", property(lambda self: self._name), raising=False)
    original_init = latency._Stream.__init__

    names = iter(["a", "b", "kf"])

    def init(self, model, ex, dev, root, options, state):
        original_init(self, model, ex, dev, root, options, state)
        self._name = next(names)

    monkeypatch.setattr(latency._Stream, "__init__", init)
    runs = {"a": (student, None), "b": (student, None), "kf": (student, KeyframeOptions(3, "scores", "gt"))}
    record = latency.stream_latency(cfg, runs, "val", tmp_path / "latency.json", frames=3, progress=False)
    from etc.data.clips import list_clips

    frames = len(list_clips("synthetic", synthetic_tree, "val")[0])
    assert frames > 3 and record["frames"] == frames and record["clips"] == 1  # the whole first clip
    assert len(calls) == 3 * frames
    per_frame = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert all({c[0] for c in group} == {"a", "b", "kf"} and len({c[1:] for c in group}) == 1 for group in per_frame)
    assert [group[0][0] for group in per_frame[:4]] == ["a", "b", "kf", "a"]
    assert all(len(r["frame_ms"]) == frames - 2 for r in record["runs"].values())
    assert record["runs"]["kf"]["keyframe_interval"] == 3
    flags = record["runs"]["kf"]["frame_keyframe"]  # frames 0 and 3 of the clip are keyframes, 0–1 warm-up
    assert flags == [(t % 3 == 0) for t in range(2, frames)] and "frame_keyframe" not in record["runs"]["a"]
    assert record["runs"]["kf"]["ms_keyframe_p50"] is not None and record["runs"]["a"]["ms_per_frame_p99"] is not None
    assert json.loads((tmp_path / "latency.json").read_text())["runs"].keys() == runs.keys()


def test_a_labelled_frame_too_near_its_clips_start_is_refused_not_averaged_out(tmp_path):
    """CamVid-like: the labelled still is frame 1 of its clip; with K = 3 it can lie 0 or 1
    frames after a keyframe (frame 0 always is one) but not 2. Scoring K = 3 would average two
    offsets of three: refused by inference and scoring, naming the interval and the clip; K = 2
    scores every offset."""
    from conftest import make_camvid_tree

    from etc.data.clips import list_clips
    from etc.evaluate.keyframe_score import _labels, offset_miou
    from etc.infer.keyframe import anchors, placement

    root = make_camvid_tree(tmp_path / "camvid", radius=1)
    cfg = load_config(None, {"dataset": {"name": "camvid", "root": str(root)}})
    (clip,) = list_clips("camvid", root, "val")
    assert tuple(clip.labelled) == (1,)
    gt = _labels(clip.frames[1].label, "camvid")

    def predictions(K):
        files = []
        for d in range(K):
            p = np.zeros((len(clip), *gt.shape), np.uint8)
            p[1] = np.where(gt == 255, 0, gt) if d == 0 else (np.where(gt == 255, 0, gt) + 1) % 11
            files.append(write_predictions(tmp_path / f"k{K}d{d}.h5", {clip.name: p}, keyframe_interval=K,
                                           keyframe_offset=d))
        return files

    for refuse in (lambda: offset_miou(cfg, predictions(3), 3), lambda: anchors([clip], KeyframeOptions(3, offset=2)),
                   lambda: placement(clip, KeyframeOptions(3, offset=0))):
        with pytest.raises(EtcError, match=rf"keyframe interval 3: clip {clip.name} .*labelled frame at position 1.* "
                                           r"at most 2$") as info:
            refuse()
        assert "\n" not in str(info.value)
    assert [placement(clip, KeyframeOptions(2, offset=d)) for d in range(2)] == [(1, True), (0, True)]
    r = offset_miou(cfg, predictions(2), 2)
    assert r["clips_per_offset"] == {"0": 1, "1": 1}
    assert r["miou_per_offset"]["0"] == pytest.approx(100.0) and r["miou_per_offset"]["1"] == pytest.approx(0.0)
    assert r["miou_protocol"] == pytest.approx(50.0)
    assert r["miou_worst_offset"] == pytest.approx(0.0)  # the table's worst offset


def test_a_dense_clip_shorter_than_the_interval_is_refused(synthetic_tree, tmp_path):
    """Every frame labelled, clips of 6 frames: K = 7 leaves offset 6 unreachable (refused before
    any prediction is read); K = 6 reaches every offset in every clip."""
    from etc.data.clips import list_clips
    from etc.evaluate.keyframe_score import offset_miou

    cfg = load_config(None, {"dataset": {"root": str(synthetic_tree)}})
    clips = list_clips("synthetic", synthetic_tree, "val")
    assert min(len(c) for c in clips) == 6
    with pytest.raises(EtcError, match=r"keyframe interval 7: clip .* has 6 frames, so offsets 6 … 6 .* at most 6$"):
        offset_miou(cfg, [tmp_path / "absent.h5"], 7)
    preds = {c.name: np.zeros((len(c), 48, 96), np.uint8) for c in clips}
    r = offset_miou(cfg, [write_predictions(tmp_path / "k6.h5", preds, keyframe_interval=6)], 6)
    assert all(v is not None for v in r["miou_per_offset"].values())


def test_a_keyframe_rows_gflops_are_amortised_over_its_interval(student, tmp_path):
    """GFLOPs per frame = (keyframe forward + (K−1) × propagated frame) / K, the propagated
    frame a bilinear warp (8 FLOPs per value) and, for feature propagation, the head: K = 1 is
    one forward, and the figure falls with K. `etc evaluate` reads K from the run's timing."""
    from etc.evaluate.metrics.cost import model_cost
    from etc.infer.keyframe import keyframe_gflops
    from etc.models import gflops
    from etc.models.checkpoint import load_model_from_checkpoint

    model, _ = load_model_from_checkpoint(student)
    model.eval()
    h, w = 48, 96
    full = gflops(model, h, w)
    assert keyframe_gflops(model, h, w, 1, "features")["gflops"] == pytest.approx(full)
    for propagate in ("scores", "features"):
        per_k = [keyframe_gflops(model, h, w, k, propagate) for k in (2, 5, 10)]
        assert per_k[0]["gflops"] > per_k[1]["gflops"] > per_k[2]["gflops"] > 0
        for k, r in zip((2, 5, 10), per_k, strict=True):
            assert r["gflops_keyframe"] == pytest.approx(full)
            assert r["gflops"] == pytest.approx((full + (k - 1) * r["gflops_propagated"]) / k)
    scores = keyframe_gflops(model, h, w, 5, "scores")["gflops_propagated"]
    classes = model(torch.zeros(1, 3, h, w), full_logits=False)["logits_low"].shape[1]
    assert scores == pytest.approx(8 * classes * h * w / 1e9)
    features = keyframe_gflops(model, h, w, 5, "features")["gflops_propagated"]
    feats = model.backbone_features(torch.zeros(1, 3, h, w))
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.head_logits(feats)
    assert features == pytest.approx(8 * feats.numel() / 1e9 + counter.get_total_flops() / 1e9)
    r1 = model_cost(student, (h, w))
    r5 = model_cost(student, (h, w), {"keyframe_interval": 5, "propagate": "features"})
    assert r1["gflops"] == pytest.approx(full) and r5["keyframe_interval"] == 5
    assert r5["gflops"] == pytest.approx(keyframe_gflops(model, h, w, 5, "features")["gflops"])
    assert r5["gflops"] < r1["gflops"]


def test_the_default_sweep_reaches_every_offset_and_the_report_draws_it(tmp_path):
    """config.yaml sweeps three intervals, each within the default clips' length (every offset
    reachable, so none is refused); the report adds the worst offset's mIoU and draws mIoU and
    TC against K, with K = 1 the keyframe network's per-frame row."""
    from pathlib import Path

    import pandas as pd

    from etc.plan.keyframe_rows import keyframe_rows
    from etc.plan.runs import run_names
    from etc.report.build import build_report, sweep_points

    root = Path(__file__).resolve().parents[1]
    default = load_config(root / "config.yaml")
    intervals = default["keyframe"]["intervals"]
    assert len(intervals) == 3 and max(intervals) <= default["dataset"]["synthetic"]["frames"]
    cfg = load_config(root / "workflow/configs/smoke.yaml", {"keyframe": {"intervals": [2, 5], "fusion_runs": []}})

    def write(path, obj):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj))

    for run in run_names(cfg):
        write(tmp_path / "metrics" / f"{run}.json", {"run": run, "miou": 50.0, "tc": 70.0, "iou": {"road": 80.0},
                                                      "tc_per_clip": {"a": 70.0}})
        (tmp_path / "curves" / f"{run}.csv").parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"iteration": [1, 2], "ce": [2.0, 1.0]}).to_csv(tmp_path / "curves" / f"{run}.csv", index=False)
    for r in keyframe_rows(cfg):
        k = r["interval"]
        write(tmp_path / "kf" / f"{r['slug']}.json", {
            "run": r["run"], "miou": 50.0, "tc": 70.0 + k, "iou": {"road": 70.0}, "tc_per_clip": {"a": 80.0},
            "miou_protocol": 60.0 - k, "miou_worst_offset": 60.0 - 2 * k, "frame_ms": [1.0, 2.0],
            "ms_per_frame_mean": 1.5})
    build_report(cfg, tmp_path / "metrics", tmp_path / "curves", tmp_path / "table.csv", tmp_path / "fig",
                 tmp_path / "kf")
    table = pd.read_csv(tmp_path / "table.csv")
    assert sorted(table["miou_worst_offset"].dropna()) == [50.0, 50.0, 56.0, 56.0, 58.0, 58.0, 58.0, 58.0]
    assert (tmp_path / "fig" / "keyframe_sweep.png").stat().st_size > 0
    from etc.report.build import with_keyframe_rows
    from etc.report.table import load_metrics

    metrics, _ = with_keyframe_rows(cfg, load_metrics([tmp_path / "metrics" / f"{r}.json" for r in run_names(cfg)]),
                                    tmp_path / "kf")
    points = sweep_points(cfg, metrics)
    assert [(p["K"], p["miou"]) for p in points if p["propagation"] == "score propagation"] == [
        (1, 59.0), (2, 58.0), (5, 55.0)]


def test_temporal_fusion_zero_is_plain_inference_and_a_strength_fuses_causally(synthetic_tree, student, tmp_path):
    """`infer.temporal_fusion` 0 gives plain per-frame labels byte for byte; A > 0 streams, keeps
    each clip's first frame as it is (nothing before it), changes later frames, records A in the
    timing, and is refused beside a keyframe interval."""
    plain, _ = run(small_config(synthetic_tree), student, tmp_path / "plain.h5")
    zero, _ = run(small_config(synthetic_tree, temporal_fusion=0.0), student, tmp_path / "zero.h5")
    assert plain.keys() == zero.keys() and all(np.array_equal(plain[c], zero[c]) for c in plain)
    fused, info = run(small_config(synthetic_tree, temporal_fusion=0.9), student, tmp_path / "fused.h5", estimator="gt")
    assert info["temporal_fusion"] == 0.9 and info["batch_size"] == 1
    assert all(np.array_equal(fused[c][0], plain[c][0]) for c in plain)
    assert any(not np.array_equal(fused[c][1:], plain[c][1:]) for c in plain)
    # causal: changing frames 3… of every clip changes nothing at frames 0–2
    import cv2

    from etc.data.clips import list_clips

    changed = tmp_path / "changed"
    shutil.copytree(synthetic_tree, changed)
    for clip in list_clips("synthetic", changed, "val"):
        for f in clip.frames[3:]:
            cv2.imwrite(str(f.image), 255 - cv2.imread(str(f.image)))
    later, _ = run(small_config(changed, temporal_fusion=0.9), student, tmp_path / "later.h5", estimator="gt")
    assert all(np.array_equal(later[c][:3], fused[c][:3]) for c in fused)
    assert any(not np.array_equal(later[c][3:], fused[c][3:]) for c in fused)
    with pytest.raises(EtcError, match="--temporal-fusion"):
        run(small_config(synthetic_tree, temporal_fusion=0.5), student, tmp_path / "kf.h5", interval=3)


def test_fused_streams_are_rows_of_the_comparison_timed_costed_and_reported(synthetic_tree, student, tmp_path):
    """keyframe.fusion_runs × fusion_strengths plan one row each (an unknown run refused); etc
    latency streams them with their fusion state; their GFLOPs add the warp of the fused scores
    to the forward; the report names them `<ablation> · temporal fusion A · <flow>` beside the
    per-frame rows, out of the keyframe sweep."""
    from pathlib import Path

    import pandas as pd

    from etc.bench import latency
    from etc.evaluate.metrics.cost import model_cost
    from etc.infer.fusion import FusionOptions
    from etc.infer.keyframe import keyframe_gflops
    from etc.models.checkpoint import load_model_from_checkpoint
    from etc.plan.keyframe_rows import keyframe_rows
    from etc.plan.runs import run_names
    from etc.report.build import build_report, sweep_points, with_keyframe_rows
    from etc.report.table import load_metrics

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "workflow/configs/smoke.yaml",
                      {"keyframe": {"intervals": [2], "propagate": ["scores"], "fusion_runs": ["student/baseline"],
                                    "fusion_strengths": [0.3, 0.6]}})
    rows = keyframe_rows(cfg)
    fused = [r for r in rows if r["kind"] == "fusion"]
    assert [(r["run"], r["fusion"], r["slug"]) for r in fused] == [
        ("student/baseline · temporal fusion 0.3 · dis", 0.3, "student/baseline.fusion0.3.dis"),
        ("student/baseline · temporal fusion 0.6 · dis", 0.6, "student/baseline.fusion0.6.dis")]
    with pytest.raises(EtcError, match="keyframe.fusion_runs: 'student/nope' is not a run"):
        keyframe_rows(load_config(root / "workflow/configs/smoke.yaml", {"keyframe": {"fusion_runs": ["student/nope"]}}))

    # etc latency: a fused stream next to the plain one, the same frames, its settings recorded
    small = small_config(synthetic_tree, warmup=0)
    record = latency.stream_latency(small, {"plain": (student, None), "fused": (student, FusionOptions(0.5, "gt"))},
                                    "val", tmp_path / "latency.json", frames=3, progress=False)
    assert len(record["runs"]["fused"]["frame_ms"]) == len(record["runs"]["plain"]["frame_ms"]) == record["frames"]
    assert record["runs"]["fused"]["temporal_fusion"] == 0.5 and "frame_keyframe" not in record["runs"]["fused"]
    with pytest.raises(EtcError, match="must lie in 0"):
        FusionOptions(1.5, "gt")

    # cost: the forward plus one bilinear warp of the fused scores per frame
    h, w = 48, 96
    parts = keyframe_gflops(load_model_from_checkpoint(student)[0].eval(), h, w, 2, "scores")
    cost = model_cost(student, (h, w), {"keyframe_interval": 1, "temporal_fusion": 0.5})
    assert cost["gflops"] == pytest.approx(parts["gflops_keyframe"] + parts["gflops_propagated"])
    assert cost["gflops"] > model_cost(student, (h, w))["gflops"]

    # the report: fused rows named by their setting, not in the keyframe sweep
    def write(path, obj):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj))

    for run in run_names(cfg):
        write(tmp_path / "metrics" / f"{run}.json", {"run": run, "miou": 50.0, "tc": 70.0, "iou": {"road": 80.0},
                                                      "tc_per_clip": {"a": 70.0}})
        (tmp_path / "curves" / f"{run}.csv").parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"iteration": [1, 2], "ce": [2.0, 1.0]}).to_csv(tmp_path / "curves" / f"{run}.csv", index=False)
    # the rows carry accuracy only, as the workflow's keyframe-score writes them; the streamed
    # latency joins from etc latency's record of every row (etc report --latency)
    for r in rows:
        write(tmp_path / "kf" / f"{r['slug']}.json", {
            "run": r["run"], "miou": 50.0 + 10 * r.get("fusion", 0), "tc": 70.0 + 10 * r.get("fusion", 0),
            "iou": {"road": 70.0}, "tc_per_clip": {"a": 80.0}, "keyframe_interval": r["interval"],
            "miou_protocol": 50.0})
    write(tmp_path / "latency.json", {"runs": {r["run"]: {"frame_ms": [1.0, 2.0 + 20 * r.get("fusion", 0)]}
                                               for r in rows}})
    build_report(cfg, tmp_path / "metrics", tmp_path / "curves", tmp_path / "table.csv", tmp_path / "fig", tmp_path / "kf",
                 tmp_path / "latency.json")
    table = pd.read_csv(tmp_path / "table.csv").set_index("ablation")
    assert table.loc["baseline · temporal fusion 0.6 · dis", "model"] == "student"
    assert table.loc["baseline · temporal fusion 0.6 · dis", "ms_per_frame_mean"] == pytest.approx(7.5)
    assert table.loc["baseline", "ms_per_frame_p99"] == pytest.approx(1.99)
    assert table.loc["baseline · temporal fusion 0.3 · dis", "tc"] == pytest.approx(73.0)
    metrics, _ = with_keyframe_rows(cfg, load_metrics([tmp_path / "metrics" / f"{r}.json" for r in run_names(cfg)]),
                                    tmp_path / "kf")
    assert {p["K"] for p in sweep_points(cfg, metrics)} == {1, 2}
    write(tmp_path / "partial.json", {"runs": {rows[0]["run"]: {"frame_ms": [1.0]}}})
    with pytest.raises(EtcError, match=f"not '{rows[1]['run']}'; rerun `etc latency`"):
        with_keyframe_rows(cfg, metrics[:len(run_names(cfg))], tmp_path / "kf", tmp_path / "partial.json")
