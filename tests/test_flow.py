"""Flow stage: estimators against exact flow, the store, resume after kills, and clear errors."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from etc.core.config import load_config
from etc.core.errors import EtcError
from etc.data.clips import list_clips, read_label
from etc.flow.estimators import PtlflowEstimator, build_ptlflow_model, gt_flow
from etc.flow.precompute import precompute_flow, select_pairs
from etc.flow.store import FlowStore
from etc.flow.warp import fb_occlusion, warp_labels

WINDOW = [-2, -1, 1, 2]


@pytest.fixture(scope="module")
def cfg(synthetic_tree):
    return load_config(None, {"dataset": {"root": str(synthetic_tree), "window": WINDOW}, "flow": {"batch_size": 3}})


@pytest.fixture(scope="module")
def stores(cfg, tmp_path_factory):
    d = tmp_path_factory.mktemp("flow")
    precompute_flow(cfg, "val", d / "val_dis.h5", progress=False)
    precompute_flow(cfg, "train", d / "train_gt.h5", estimator="gt", progress=False)
    return d


@pytest.fixture(scope="module")
def rapidflow_ckpt(tmp_path_factory):
    """Random weights of a small ptlflow model as a Lightning-style checkpoint (plumbing only)."""
    path = tmp_path_factory.mktemp("ckpt") / "rapidflow_it1.ckpt"
    torch.manual_seed(0)
    torch.save({"state_dict": build_ptlflow_model("rapidflow_it1").state_dict()}, path)
    return path


def _contents(path):
    import h5py

    out = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda name, obj: out.__setitem__(name, obj[()].tobytes()) if hasattr(obj, "shape") else None)
        out["/attrs"] = sorted((k, str(v)) for k, v in h5.attrs.items())
    return out


def test_pair_sets(cfg, synthetic_tree):
    train = list_clips("synthetic", synthetic_tree, "train")
    training = select_pairs(train, WINDOW, "training")
    assert len(training) == sum(len([k for k in WINDOW if 0 <= t + k < len(c)]) for c in train for t in c.labelled)
    assert all(a in c.labelled for c, a, _ in training)
    both = select_pairs(train, WINDOW, "both")
    consecutive = {(c.name, a, b) for c, a, b in select_pairs(train, WINDOW, "consecutive")}
    unordered = {(c.name, min(a, b), max(a, b)) for c, a, b in both}
    assert consecutive <= unordered and len(unordered) == len(both)


def test_dis_has_low_endpoint_error(stores, synthetic_tree):
    store = FlowStore(stores / "val_dis.h5", expect={"estimator": "dis"})
    epe = []
    for clip in list_clips("synthetic", synthetic_tree, "val"):
        for t in range(len(clip) - 1):
            exact, valid = gt_flow(synthetic_tree, clip, t, t + 1)
            est, _ = store.read(clip.name, t, t + 1)
            epe.append(np.linalg.norm(est.permute(1, 2, 0).numpy() - exact, axis=2)[valid].mean())
    # measured 0.56 px at 96×192 (the default set) and ~0.9 px on this 48×96 set (float16 store)
    assert np.mean(epe) < 1.5


def test_gt_store_reproduces_labels_on_non_occluded_pixels(stores, synthetic_tree):
    store = FlowStore(stores / "train_gt.h5", expect={"estimator": "gt", "image_size": [48, 96]})
    for clip in list_clips("synthetic", synthetic_tree, "train"):
        t = clip.labelled[0]
        lab_t = read_label(clip.frames[t].dense_label, "synthetic")
        for k in WINDOW:
            if not 0 <= t + k < len(clip):
                continue
            flow, occ = store.read(clip.name, t, t + k)
            lab_n = torch.from_numpy(read_label(clip.frames[t + k].dense_label, "synthetic").astype(np.int64))[None]
            warped = warp_labels(lab_n, flow[None])[0].numpy()
            keep = ~occ.numpy()
            assert keep.mean() > 0.5
            assert np.array_equal(warped[keep], lab_t[keep])


def test_fb_occlusion_of_exact_flow_matches_generator(synthetic_tree):
    inter = union = 0
    for clip in list_clips("synthetic", synthetic_tree, "train"):
        for t in range(len(clip) - 1):
            f, v = gt_flow(synthetic_tree, clip, t, t + 1)
            b, _ = gt_flow(synthetic_tree, clip, t + 1, t)
            occ = fb_occlusion(torch.from_numpy(f).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None])[0].numpy()
            inter += (occ & ~v).sum()
            union += (occ | ~v).sum()
    assert union > 0 and inter / union > 0.95  # measured IoU 1.0 (integer motion)


def test_chained_gt_flow_equals_composition_of_steps(synthetic_tree):
    clip = list_clips("synthetic", synthetic_tree, "train")[0]
    f02, v02 = gt_flow(synthetic_tree, clip, 0, 2)
    f01, _ = gt_flow(synthetic_tree, clip, 0, 1)
    f12, _ = gt_flow(synthetic_tree, clip, 1, 2)
    ys, xs = np.nonzero(v02)
    mid_x, mid_y = (xs + f01[ys, xs, 0]).astype(int), (ys + f01[ys, xs, 1]).astype(int)
    assert np.array_equal(f02[ys, xs], f01[ys, xs] + f12[mid_y, mid_x])
    assert v02.mean() > 0.5


def test_store_reads_both_directions_and_rescales(stores, synthetic_tree):
    store = FlowStore(stores / "val_dis.h5")
    clip = list_clips("synthetic", synthetic_tree, "val")[0]
    fw, _ = store.read(clip.name, 0, 1)
    bw, _ = store.read(clip.name, 1, 0)
    assert not torch.equal(fw, bw)
    big, occ = store.read(clip.name, 0, 1, size=(96, 192))
    assert big.shape == (2, 96, 192) and occ.shape == (96, 192) and occ.dtype == torch.bool
    assert torch.allclose(big.abs().mean(), 2 * fw.abs().mean(), rtol=0.1)
    with pytest.raises(EtcError, match="no flow for frames 0→3"):
        store.read(clip.name, 0, 3)
    with pytest.raises(EtcError, match="not a scaled version"):
        store.read(clip.name, 0, 1, size=(48, 48))


def test_reduced_scale_store_reads_back_at_full_resolution(cfg, stores, tmp_path, synthetic_tree):
    out = tmp_path / "half.h5"
    precompute_flow(cfg, "train", out, estimator="gt", scale=0.5, dtype="float32", progress=False)
    half, full = FlowStore(out, expect={"stored_size": [24, 48]}), FlowStore(stores / "train_gt.h5")
    clip = list_clips("synthetic", synthetic_tree, "train")[0]
    t = clip.labelled[0]
    f_half, _ = half.read(clip.name, t, t + 1, size=(48, 96))
    f_full, occ = full.read(clip.name, t, t + 1)
    # same vectors in full-resolution pixels, up to the resampling of motion boundaries
    assert (f_half - f_full).norm(dim=0)[~occ].median() < 0.25


def test_mismatched_store_is_a_clear_error(cfg, stores, tmp_path):
    with pytest.raises(EtcError, match=r"val_dis.h5: attribute 'estimator' is 'dis', the request needs 'gt'"):
        FlowStore(stores / "val_dis.h5", expect={"estimator": "gt"})
    with pytest.raises(EtcError, match=r"val_dis.h5 exists with other settings \(estimator='dis'"):
        precompute_flow(cfg, "val", stores / "val_dis.h5", estimator="gt", progress=False)
    with pytest.raises(EtcError, match=r"has no clip"):
        FlowStore(stores / "val_dis.h5").read("nope", 0, 1)
    with pytest.raises(EtcError, match=r"missing.h5 not found; run `etc precompute-flow"):
        FlowStore(tmp_path / "missing.h5")


def test_resume_after_interruption_equals_uninterrupted(cfg, tmp_path):
    import h5py

    whole = tmp_path / "whole.h5"
    precompute_flow(cfg, "train", whole, progress=False)
    part = tmp_path / "part.h5"
    partial = tmp_path / "part.partial.h5"
    r = precompute_flow(cfg, "train", part, limit=4, progress=False)
    assert not part.exists() and partial.exists() and r["computed"] == 4
    with pytest.raises(EtcError, match=r"part.partial.h5 exists: rerun the same command"):
        FlowStore(part)
    with h5py.File(partial, "a") as h5:  # a pair whose data landed but whose mark did not
        clip = next(iter(h5))
        key = next(iter(h5[clip]))
        del h5[clip][key].attrs["complete"]
    r2 = precompute_flow(cfg, "train", part, progress=False)
    assert r2["computed"] == r2["pairs"] - 3 and r2["out"] == str(part)
    assert _contents(part) == _contents(whole)
    assert precompute_flow(cfg, "train", part, progress=False)["skipped"] == "complete"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_partial_file_is_started_anew(cfg, tmp_path, damage):
    whole = tmp_path / "whole.h5"
    precompute_flow(cfg, "val", whole, estimator="gt", progress=False)
    part, partial = tmp_path / "part.h5", tmp_path / "part.partial.h5"
    precompute_flow(cfg, "val", part, estimator="gt", limit=2, progress=False)
    if damage == "garbage":
        partial.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(1000))
    else:
        data = partial.read_bytes()
        partial.write_bytes(data[: len(data) // 2])
    precompute_flow(cfg, "val", part, estimator="gt", progress=False)
    assert _contents(part) == _contents(whole)


_KILL_SCRIPT = """
import sys, time
import h5py
from etc.core.config import load_config
from etc.flow.precompute import precompute_flow
flush = h5py.File.flush
def slow_flush(self):  # widen the windows between a pair's data, its mark and the next pair
    flush(self)
    time.sleep(0.02)
h5py.File.flush = slow_flush
cfg = load_config(None, {"dataset": {"root": sys.argv[1], "window": [-2, -1, 1, 2]}, "flow": {"batch_size": 1}})
precompute_flow(cfg, "train", sys.argv[2], estimator="dis", pairs="both", progress=False)
"""


def test_kill_9_mid_run_then_rerun_equals_uninterrupted(cfg, synthetic_tree, tmp_path):
    """Two real SIGKILLs at arbitrary moments of the writes, then a rerun finishes the file."""
    whole = tmp_path / "whole.h5"
    precompute_flow(cfg, "train", whole, estimator="dis", pairs="both", batch_size=1, progress=False)
    part, partial = tmp_path / "part.h5", tmp_path / "part.partial.h5"
    rng = np.random.default_rng(0)
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(synthetic_tree), str(part)])
        start = partial.stat().st_size if partial.exists() else 0
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:  # wait for new pairs to land
            if partial.exists() and partial.stat().st_size > start + 30_000:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL and not part.exists() and partial.exists()
    r = precompute_flow(cfg, "train", part, estimator="dis", pairs="both", batch_size=1, progress=False)
    assert 0 < r["computed"] < r["pairs"]
    assert _contents(part) == _contents(whole)


def test_missing_ptlflow_checkpoint_says_what_to_fetch(cfg, tmp_path):
    msg = r"ptlflow:rapidflow_it1 needs a local checkpoint .*nope.ckpt does not exist.*weights/.*never downloaded"
    with pytest.raises(EtcError, match=msg):
        precompute_flow(cfg, "val", tmp_path / "x.h5", estimator="ptlflow:rapidflow_it1", ckpt=tmp_path / "nope.ckpt")
    with pytest.raises(EtcError, match=r"needs a local checkpoint: download the weights of 'raft_small'"):
        precompute_flow(cfg, "val", tmp_path / "x.h5", estimator="ptlflow:raft_small")
    with pytest.raises(EtcError, match=r"unknown ptlflow model 'no_such_net'"):
        precompute_flow(cfg, "val", tmp_path / "x.h5", estimator="ptlflow:no_such_net", ckpt=tmp_path / "nope.ckpt")
    with pytest.raises(EtcError, match=r"unknown flow estimator 'farneback'"):
        precompute_flow(cfg, "val", tmp_path / "x.h5", estimator="farneback")


def test_ptlflow_checkpoint_formats_and_wrong_architecture(rapidflow_ckpt, tmp_path):
    state = torch.load(rapidflow_ckpt, weights_only=True)["state_dict"]
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    a = PtlflowEstimator("rapidflow_it1", rapidflow_ckpt)
    b = PtlflowEstimator("rapidflow_it1", bare)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True))
    with pytest.raises(EtcError, match=r"bare.pt does not fit ptlflow model 'raft_small'.*checkpoint made for that"):
        PtlflowEstimator("raft_small", bare)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(EtcError, match=r"cannot read checkpoint .*junk.ckpt"):
        PtlflowEstimator("rapidflow_it1", junk)
    # frames go in as BGR in [0, 1], padded to the output stride
    red = np.zeros((13, 21, 3), np.uint8)
    red[..., 0] = 255
    x = a.to_input([red], [red])
    assert x.shape[:3] == (1, 2, 3) and x.shape[-2] >= 13 and x.shape[-1] >= 21
    assert x.shape[-2] % a.stride == 0 and x.shape[-1] % a.stride == 0
    assert x[0, 0, 2].min() == 1.0 and x[0, 0, :2].max() == 0.0


@pytest.mark.parametrize("estimator", ["dis", "dis:fast", "gt", "ptlflow:rapidflow_it1"])
def test_every_estimator_writes_a_readable_store(cfg, estimator, rapidflow_ckpt, tmp_path, synthetic_tree):
    """The registry end to end through the store (for ptlflow: random weights, plumbing only)."""
    out = tmp_path / "flow.h5"
    ckpt = rapidflow_ckpt if estimator.startswith("ptlflow") else None
    r = precompute_flow(cfg, "val", out, estimator=estimator, ckpt=ckpt, progress=False)
    clip = list_clips("synthetic", synthetic_tree, "val")[0]
    assert r["computed"] == r["pairs"] == len(clip) - 1 and r["out"] == str(out)
    store = FlowStore(out, expect={"estimator": estimator, "pairs": "consecutive", "dtype": "float16"})
    assert len(store.attrs["ckpt_sha256"]) == (64 if ckpt else 0)
    for t in range(len(clip) - 1):
        flow, occ = store.read(clip.name, t + 1, t)
        assert flow.shape == (2, 48, 96) and occ.shape == (48, 96) and torch.isfinite(flow).all()


def test_cli_precompute_flow_with_dataset_and_root(synthetic_tree, rapidflow_ckpt, tmp_path):
    """A fresh process, so that ptlflow's import banner would show if it leaked to stdout."""
    out = tmp_path / "val.h5"
    args = ["precompute-flow", "--dataset", "synthetic", "--root", str(synthetic_tree), "--split", "val",
            "--estimator", "ptlflow:rapidflow_it1", "--ckpt", str(rapidflow_ckpt), "--out", str(out)]
    res = subprocess.run([sys.executable, "-m", "etc", *args], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("5/5 pairs") and len(res.stdout.splitlines()) == 1, res.stdout
    assert FlowStore(out, expect={"estimator": "ptlflow:rapidflow_it1"}).attrs["split"] == "val"
    assert "xFormers" not in res.stderr and "Warning" not in res.stderr, res.stderr
    res = subprocess.run([sys.executable, "-m", "etc", *args, "--window", "1,x"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "'--window': expected comma-separated integers such as -2,-1,1,2,3, got '1,x'" in res.stderr, res.stderr


class _PairsFromStore(torch.utils.data.Dataset):
    def __init__(self, store, clip, n):
        self.store, self.clip, self.n = store, clip, n

    def __len__(self):
        return self.n

    def __getitem__(self, t):
        return self.store.read(self.clip, t, t + 1, size=(24, 48))[0]


def test_store_serves_dataloader_workers(stores, synthetic_tree):
    """Each worker process opens its own handle (an HDF5 handle must not cross a fork)."""
    import pickle

    store = FlowStore(stores / "val_dis.h5")
    clip = list_clips("synthetic", synthetic_tree, "val")[0]
    expected = torch.stack([store.read(clip.name, t, t + 1, size=(24, 48))[0] for t in range(len(clip) - 1)])
    assert store._h5 is not None and pickle.loads(pickle.dumps(store))._h5 is None
    loader = torch.utils.data.DataLoader(_PairsFromStore(store, clip.name, len(clip) - 1), batch_size=len(clip) - 1,
                                         num_workers=2)
    assert torch.equal(next(iter(loader)), expected)


def test_flow_quality_of_exact_noisy_and_dis_flow(cfg, stores, tmp_path, synthetic_tree):
    """Exact vs exact is perfect; noise of σ px per component gives an EPE near σ·√(π/2) (the
    mean of a 2-D Gaussian's norm; float16 storage rounds a little) with exact occlusion; DIS
    lands between, as the EPE test above measures it independently."""
    from etc.flow.quality import flow_quality

    precompute_flow(cfg, "val", tmp_path / "gt.h5", estimator="gt", progress=False)
    precompute_flow(cfg, "val", tmp_path / "noisy.h5", estimator="gt:noise1", progress=False)
    exact = flow_quality(tmp_path / "gt.h5", tmp_path / "gt.h5")
    assert exact["epe"] == 0 and exact["occ_iou"] == 1 and exact["occ_agree"] == 1
    noisy = flow_quality(tmp_path / "noisy.h5", tmp_path / "gt.h5", tmp_path / "q.json", tmp_path / "q.csv")
    assert noisy["estimator"] == "gt:noise1" and noisy["occ_iou"] == 1
    assert abs(noisy["epe"] - math.sqrt(math.pi / 2)) < 0.1, noisy["epe"]
    dis = flow_quality(stores / "val_dis.h5", tmp_path / "gt.h5")
    assert 0 < dis["epe"] < 1.5 and dis["occ_iou"] < 1
    rows = (tmp_path / "q.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * noisy["pairs"]
    again = tmp_path / "again.h5"
    precompute_flow(cfg, "val", again, estimator="gt:noise1", progress=False)
    assert _contents(again) == _contents(tmp_path / "noisy.h5")  # seeded by the pair: reproducible
    with pytest.raises(EtcError, match="gt:noise<σ"):
        precompute_flow(cfg, "val", tmp_path / "x.h5", estimator="gt:blur", progress=False)


def test_cli_train_checks_the_store_against_the_training_estimator(cfg, stores, tmp_path):
    """A training store of another estimator than flow.estimator is refused, naming both and
    --estimator; naming the store's estimator with --estimator (the flow study) trains."""
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(load_config(None, {
        **cfg, "students": {"s": {"backbone": "tiny", "width": 0.25, "head_channels": 8}},
        "train": {"student": {"iterations": 1, "batch_size": 2}}})))
    base = [sys.executable, "-m", "etc", "train", "--config", str(path), "--run", "s/tl", "--device", "cpu",
            "--flow", str(stores / "train_gt.h5"), "--out", str(tmp_path / "tl.pt")]
    res = subprocess.run(base, capture_output=True, text=True)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "estimator 'gt'" in res.stderr and "training flow is estimator 'dis'" in res.stderr and "--estimator" in res.stderr
    assert not (tmp_path / "tl.pt").exists()
    res = subprocess.run(base + ["--estimator", "gt"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    val = subprocess.run([*base[:-4], "--flow", str(stores / "val_dis.h5"), "--out", str(tmp_path / "v.pt")],
                         capture_output=True, text=True)
    assert val.returncode == 2 and "split 'val'" in val.stderr and "split 'train'" in val.stderr
