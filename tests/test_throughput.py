"""The input pipeline and the per-device execution options: worker counts, uint8 batches that
convert to exactly the old float tensors, decoding ahead in threads, and `auto` resolution."""

import numpy as np
import pytest
import torch

from etc.core.config import load_config
from etc.core.errors import EtcError
from etc.core.execution import MAX_AUTO_WORKERS, auto_workers, cpus_per_process, resolve_execution


def test_auto_workers_follow_the_affinity_mask_and_the_device(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(12)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpus_per_process() == 12
    assert auto_workers("cpu") == 0  # training on CPU: the network uses every core
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert auto_workers("cpu", "infer") == 4  # infer fans each batch out over torch's threads
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert auto_workers("cpu", "infer") == 0  # one core: no pool, no thread hop
    assert auto_workers("cuda") == 11  # all but the core that launches kernels
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun: four processes share the 12 CPUs
    assert cpus_per_process() == 3 and auto_workers("cuda") == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "12")
    assert auto_workers("cuda") == 1  # never 0 on a GPU: decoding would stall it
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(256)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert auto_workers("cuda") == MAX_AUTO_WORKERS
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # a Snakemake job given 8 threads
    assert cpus_per_process() == 8 and auto_workers("cuda") == 7
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun keeps the value: two processes share them
    assert auto_workers("cuda") == 3


def test_auto_options_resolve_per_device_and_explicit_values_win():
    cfg = load_config(None, {})
    infer_cpu = resolve_execution(cfg["infer"], "cpu", "infer")
    assert (infer_cpu.channels_last, infer_cpu.bf16, infer_cpu.compile, infer_cpu.fused_labels) == (True, False, False, True)
    assert infer_cpu.num_workers == (torch.get_num_threads() if torch.get_num_threads() > 1 else 0)
    train_cpu = resolve_execution(cfg["train"]["student"], "cpu", "train")
    assert (train_cpu.channels_last, train_cpu.bf16, train_cpu.num_workers) == (False, False, 0)
    for use, section in (("infer", cfg["infer"]), ("train", cfg["train"]["student"])):
        cuda = resolve_execution(section, "cuda", use)
        assert cuda.channels_last and cuda.bf16 and cuda.cudnn_benchmark and not cuda.compile and cuda.num_workers >= 1
        assert not cuda.fused_labels and not train_cpu.fused_labels
    mine = resolve_execution({**cfg["infer"], "channels_last": False, "bf16": True, "num_workers": 3}, "cpu", "infer")
    assert (mine.channels_last, mine.bf16, mine.num_workers) == (False, True, 3)
    assert mine.memory_format == torch.contiguous_format


@pytest.mark.parametrize("section,value", [("train.student.num_workers", "eight"), ("train.student.num_workers", -1),
                                           ("infer.num_workers", 1.5), ("infer.bf16", "yes")])
def test_bad_execution_values_name_the_key(section, value):
    *parents, leaf = section.split(".")
    over: dict = {}
    node = over
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    with pytest.raises(EtcError, match=f"'{section}'"):
        load_config(None, over)


def _write_frames(folder, arrays):
    from etc.core.io import write_png

    paths = []
    for i, a in enumerate(arrays):
        p = folder / f"f{i}.png"
        write_png(p, a)
        paths.append(p)
    return paths


@pytest.fixture
def frames(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (16, 24, 3), dtype=np.uint8) for _ in range(5)]
    imgs[0][:16, :16] = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)  # every level, every channel
    return _write_frames(tmp_path, imgs), imgs


def test_decoded_batches_are_bitwise_the_reference_preprocessing(frames):
    from etc.data.feed import load_batch, to_network
    from etc.data.pairs import images_to_batch

    paths, imgs = frames
    ref = images_to_batch(imgs)
    cpu = torch.device("cpu")
    for normalised in (False, True):  # uint8 (converted by torch) or looked up while decoding
        raw = load_batch(paths, normalised=normalised)
        assert raw.dtype == (torch.float32 if normalised else torch.uint8)
        for channels_last in (True, False):
            got = to_network(raw, cpu, channels_last)
            assert torch.equal(got, ref)
            assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_threads_decode_ahead_in_order_and_report_bad_frames(frames, tmp_path):
    from etc.data.feed import BatchFeed

    paths, _ = frames
    batches = [paths[i:i + 2] for i in range(0, len(paths), 2)] * 3
    inline = list(BatchFeed(batches))
    for threads in (1, 3):
        for ahead in (True, False):  # whole batches ahead, or the frames of each batch spread
            with BatchFeed(batches, threads=threads, ahead=ahead) as feed:
                got = list(feed)
            assert len(got) == len(inline) and all(torch.equal(a, b) for a, b in zip(got, inline, strict=True))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    for threads, ahead in ((0, False), (2, True), (2, False)):
        with pytest.raises(EtcError, match="broken.png"):
            list(BatchFeed(batches[:2] + [[paths[0], broken]], threads=threads, ahead=ahead))
    other = _write_frames(tmp_path / "big", [np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(EtcError, match="every frame of a clip must have one size"):
        list(BatchFeed([[paths[0], other[0]]]))


def test_a_consumer_that_stops_early_leaves_no_thread_behind(frames):
    import threading

    from etc.data.feed import BatchFeed

    paths, _ = frames
    for ahead in (True, False):
        feed = iter(BatchFeed([paths[:2]] * 20, threads=2, ahead=ahead))
        next(feed)
        feed.close()
        assert not [t for t in threading.enumerate() if t.name.startswith("decode")]
        with BatchFeed([paths[:2]] * 20, threads=2, ahead=ahead):  # started, never read
            pass
        assert not [t for t in threading.enumerate() if t.name.startswith("decode")]


def test_training_items_are_uint8_and_convert_to_the_old_float_batch(synthetic_tree):
    """PairDataset ships uint8 images and labels; device_batch gives bitwise the tensors the
    per-sample float conversion gave (so training numbers do not change)."""
    from etc.data.augment import PairedAugment
    from etc.data.clips import list_clips, training_pairs
    from etc.data.pairs import PairDataset, device_batch, normalise, to_tensor_image

    pairs = training_pairs(list_clips("synthetic", synthetic_tree, "train"), [-1, 1])
    aug = PairedAugment((40, 80), (0.9, 1.2), 5.0, True)
    ds = PairDataset("synthetic", pairs, None, aug)
    keys = [(i, 7 + i) for i in range(len(ds))]
    items = [ds[k] for k in keys]
    assert items[0]["image_t"].dtype == torch.uint8 and items[0]["label_t"].dtype == torch.uint8
    b = device_batch(torch.utils.data.default_collate(items), torch.device("cpu"))
    for i in range(len(keys)):  # each augmented uint8 item, converted the old way
        raw_t = to_tensor_image(items[i]["image_t"].numpy())
        assert torch.equal(b["raw_t"][i], raw_t) and torch.equal(b["image_t"][i], normalise(raw_t))
        raw_n = to_tensor_image(items[i]["image_n"].numpy())
        assert torch.equal(b["raw_n"][i], raw_n) and torch.equal(b["image_n"][i], normalise(raw_n))
    assert b["label_t"].dtype == torch.int64 and b["image_t"].is_contiguous()
    assert torch.equal(b["label_t"], torch.stack([it["label_t"].long() for it in items]))


def test_infer_with_decoding_threads_writes_the_same_predictions(synthetic_tree, tmp_path):
    from etc.infer.predict import infer, read_predictions
    from etc.train.loop import train

    cfg = load_config(None, {"dataset": {"root": str(synthetic_tree), "window": [-1, 1]},
                             "students": {"s": {"backbone": "tiny", "width": 0.25, "head_channels": 8}},
                             "train": {"student": {"iterations": 1, "batch_size": 2}},
                             "infer": {"batch_size": 4, "warmup": 0}})
    ckpt = tmp_path / "s.pt"
    train(cfg, "s/baseline", ckpt, progress=False)
    inline_cfg = load_config(None, {**cfg, "infer": {**cfg["infer"], "num_workers": 0}})
    inline = infer(inline_cfg, ckpt, "val", tmp_path / "a.h5", progress=False)
    threaded_cfg = load_config(None, {**cfg, "infer": {**cfg["infer"], "num_workers": 2, "channels_last": False}})
    threaded = infer(threaded_cfg, ckpt, "val", tmp_path / "b.h5", progress=False)
    a, b = read_predictions(tmp_path / "a.h5"), read_predictions(tmp_path / "b.h5")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # the timing record says what was used
    assert (inline["num_workers"], inline["channels_last"], inline["bf16"], inline["cudnn_benchmark"]) == (0, True, False, False)
    assert (threaded["num_workers"], threaded["channels_last"]) == (2, False)
    assert threaded["pipeline_fps"] > 0 and inline["fps"] > 0
    # `etc infer --full-labels`: labels from the full-resolution scores, recorded as such; the
    # fused ones above may differ only at exact near-ties
    import json

    import yaml
    from click.testing import CliRunner

    from etc.cli import cli

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(cli, ["infer", "--config", str(tmp_path / "c.yaml"), "--model", str(ckpt),
                                   "--out", str(tmp_path / "full.h5"), "--full-labels"])
    assert res.exit_code == 0, res.output
    assert inline["fused_labels"] is True
    assert json.loads((tmp_path / "full.timing.json").read_text())["fused_labels"] is False
    full = read_predictions(tmp_path / "full.h5")
    same = sum(int((full[k] == a[k]).sum()) for k in a) / sum(a[k].size for k in a)
    assert same > 0.9999


def test_the_writer_thread_writes_every_clip_in_order_and_reports_failures(tmp_path):
    import h5py

    from etc.data.clips import Clip, Frame
    from etc.infer.predict import _ClipWriter, _HostLabels

    clips = [Clip(f"c{i}", "val", tuple(Frame(n, tmp_path / f"{n}.png") for n in range(3))) for i in range(4)]
    labels = {c.name: torch.randint(0, 19, (3, 8, 12)) for c in clips}
    with h5py.File(tmp_path / "p.h5", "w") as h5, _ClipWriter(h5, threaded=True) as writer:
        for c in clips:
            writer.submit(c, [_HostLabels(labels[c.name][:2]), _HostLabels(labels[c.name][2:])])
    with h5py.File(tmp_path / "p.h5", "r") as h5:
        assert list(h5) == [c.name for c in clips]
        for c in clips:
            assert np.array_equal(h5[c.name][()], labels[c.name].to(torch.uint8).numpy())
            assert list(h5[c.name].attrs["frame_numbers"]) == [0, 1, 2]
    with pytest.raises(ValueError), h5py.File(tmp_path / "q.h5", "w") as h5, _ClipWriter(h5, threaded=True) as writer:
        writer.submit(clips[0], [_HostLabels(labels["c0"])])
        writer.submit(clips[0], [_HostLabels(labels["c0"])])  # a second dataset of one name: h5py refuses


def test_training_with_loader_workers_is_bitwise_training_without(synthetic_tree, tmp_path):
    from etc.models.checkpoint import load_checkpoint
    from etc.train.loop import train

    base = {"dataset": {"root": str(synthetic_tree), "window": [-1, 1]},
            "students": {"s": {"backbone": "tiny", "width": 0.25, "head_channels": 8}},
            "augment": {"crop": [40, 80], "scale": [0.9, 1.2], "rotation": 5, "hflip": True}}
    weights = {}
    for workers in (0, 2):
        cfg = load_config(None, {**base, "train": {"student": {"iterations": 3, "batch_size": 4, "num_workers": workers}}})
        train(cfg, "s/baseline", tmp_path / f"w{workers}.pt", progress=False)
        weights[workers] = load_checkpoint(tmp_path / f"w{workers}.pt")["model"]
    assert all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
