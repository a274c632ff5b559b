"""The Python API and self-contained checkpoints, as a user meets them: a student trained on a
`folder` tree, then used where neither the tree nor a config exists — through `etc.load`,
`etc segment-video` and `etc export` — with the labels of `etc infer`."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import make_folder_tree

import etc
from etc.core.config import FOLDER_ROOT_ENV
from etc.core.errors import EtcError

TINY = {"backbone": "tiny", "width": 0.25, "head_channels": 8}


@pytest.fixture(scope="module")
def made(synthetic_tree, tmp_path_factory):
    """A student of a `folder` tree whose classes exist nowhere else, `etc infer`'s labels of
    the tree's validation frames, and those frames; the tree is gone when the tests run."""
    from etc.core.config import load_config
    from etc.data.clips import list_clips, read_image
    from etc.infer.predict import infer, read_predictions
    from etc.models.checkpoint import load_checkpoint, save_checkpoint
    from etc.train.loop import train

    tmp = tmp_path_factory.mktemp("api")
    tree = make_folder_tree(tmp / "mine", synthetic_tree)
    classes = yaml.safe_load((tree / "classes.yaml").read_text())
    names = [f"my {n}" for n in classes["names"]]  # nobody's class list but this tree's
    colours = [[(37 * i) % 256, (91 * i) % 256, (13 * i + 50) % 256] for i in range(len(names))]
    (tree / "classes.yaml").write_text(yaml.safe_dump({**classes, "names": names, "palette": colours}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(FOLDER_ROOT_ENV, "")  # load_config sets it for the folder dataset; undone below
        cfg = load_config(None, {"dataset": {"name": "folder", "root": str(tree), "window": [-1, 1]},
                                 "students": {"s": TINY}, "train": {"student": {"iterations": 1, "batch_size": 2}}})
        ckpt = tmp / "student.pt"
        train(cfg, "s/baseline", ckpt, progress=False)
        state = load_checkpoint(ckpt)  # one step leaves a constant map: spread the classifier's weights
        w = state["model"]["classifier.weight"]
        state["model"]["classifier.weight"] = torch.randn(w.shape, generator=torch.Generator().manual_seed(0)) * 3
        save_checkpoint(ckpt, state)
        (clip,) = list_clips("folder", tree, "val")
        frames = [read_image(f.image) for f in clip.frames]
        infer(cfg, ckpt, "val", tmp / "infer.h5", progress=False)
        expected = read_predictions(tmp / "infer.h5")[clip.name]
    shutil.rmtree(tree)
    assert len(np.unique(expected)) > 1  # a constant map would prove little
    return {"ckpt": ckpt, "frames": frames, "expected": expected, "names": tuple(names),
            "palette": np.asarray(colours, np.uint8), "config": cfg}


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """A fresh folder without config.yaml, no dataset, no folder root in the environment."""
    monkeypatch.delenv(FOLDER_ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _etc(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etc", *map(str, args)], capture_output=True, text=True)


def test_the_checkpoint_carries_what_using_it_needs(made):
    from etc.models.checkpoint import load_checkpoint
    from etc.plan.rerun import reads_digest

    meta = load_checkpoint(made["ckpt"])["meta"]
    assert meta["classes"] == list(made["names"]) and meta["palette"] == made["palette"].tolist()
    assert meta["dataset"] == "folder" and meta["ignore_index"] == 255 and meta["frame_size"] == [48, 96]
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["std"] == [0.229, 0.224, 0.225]
    assert meta["config_digest"] == reads_digest(made["config"], "train-student", student="s", ablation="baseline")


def test_load_and_segment_with_the_checkpoint_alone(made, nowhere):
    seg = etc.load(made["ckpt"])
    assert seg.classes == made["names"] and np.array_equal(seg.palette, made["palette"])
    assert seg.frame_size == (48, 96) and seg.dataset == "folder" and seg.ignore_index == 255
    labels = seg.labels(made["frames"])
    assert labels.dtype == np.uint8 and np.array_equal(labels, made["expected"])  # `etc infer`'s labels
    assert np.array_equal(seg.labels(np.stack(made["frames"])), made["expected"])
    assert np.array_equal(seg.labels(made["frames"][2]), made["expected"][2:3])  # one frame
    scores = seg.scores(made["frames"][:2])
    assert scores.shape == (2, len(made["names"]), 48, 96) and scores.dtype == np.float32
    assert np.allclose(scores.sum(1), 1, atol=1e-5)
    assert (scores.argmax(1) == labels[:2]).mean() > 0.999
    rgb = seg.overlay(made["frames"][0], labels[0])
    assert rgb.shape == (48, 96, 3) and rgb.dtype == np.uint8
    assert np.array_equal(seg.overlay(made["frames"][0], labels[0], alpha=0.0), made["frames"][0])
    assert np.array_equal(seg.overlay(made["frames"][0], labels[0], alpha=1.0), made["palette"][labels[0]])
    with pytest.raises(EtcError, match="frame 1 is 80×40, frame 0 96×48"):
        seg.labels([made["frames"][0], made["frames"][1][:40, :80]])
    with pytest.raises(EtcError, match="RGB uint8"):
        seg.labels([made["frames"][0].astype(np.float32)])


def test_video_of_the_api_and_the_cli_need_only_the_checkpoint(made, nowhere):
    from etc.core.io import read_png, write_png

    for i, img in enumerate(made["frames"]):
        write_png(nowhere / "frames" / f"frame_{i + 8}.png", img)
    r = etc.load(made["ckpt"]).video(nowhere / "frames", labels_out=nowhere / "api_labels", estimator=None)
    assert r["frames"] == len(made["frames"]) and (nowhere / "frames.seg.mp4").is_file()
    got = np.stack([read_png(p) for p in sorted((nowhere / "api_labels").glob("*.png"))])
    assert np.array_equal(got, made["expected"])
    res = _etc("segment-video", "frames", "--model", made["ckpt"], "--out", "out.mp4", "--labels-out", "cli_labels",
               "--flow-estimator", "none")
    assert res.returncode == 0, res.stderr
    got = np.stack([read_png(p) for p in sorted((nowhere / "cli_labels").glob("*.png"))])
    assert np.array_equal(got, made["expected"])
    header = (nowhere / "out.csv").read_text().splitlines()[0]
    assert header.endswith(",".join(f"share_{n.replace(' ', '_')}" for n in made["names"]))


def test_export_checks_parity_on_generated_frames_at_the_training_size(made, nowhere):
    res = _etc("export", "--model", made["ckpt"], "--format", "torchscript", "--out", "m.pt")
    assert res.returncode == 0, res.stderr
    assert "at 48x96 on 4 generated frames" in res.stdout and "at 36x72 on 4 generated frames" in res.stdout
    assert "4 generated frames at 48×96" in res.stderr  # said, not hidden
    net = torch.jit.load(str(nowhere / "m.pt"))
    from etc.data.pairs import images_to_batch

    with torch.no_grad():
        labels = net(images_to_batch(made["frames"], channels_last=False)).argmax(1).numpy()
    assert (labels == made["expected"]).mean() > 0.999


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed (onnx extra)")
def test_onnx_export_without_the_dataset(made, nowhere):
    from etc.core.config import command_config
    from etc.deploy.export import export_model, parity_frames

    frames = parity_frames(None, command_config(None), 2)  # what `etc export` does without --frames
    r = export_model(made["ckpt"], nowhere / "m.onnx", "onnx", frames=frames, size=(48, 96))
    assert r["parity"]["48x96"]["generated"] and r["parity"]["48x96"]["frames"] == 2
    assert r["parity"]["48x96"]["identical_labels"] >= 0.999


def _without_meta(made, path, **changes):
    from etc.models.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(made["ckpt"])
    del state["meta"]
    save_checkpoint(path, {**state, **changes})
    return path


def test_an_old_checkpoint_of_a_named_dataset_still_loads(made, nowhere):
    from etc.data.labels import class_names, palette

    seg = etc.load(_without_meta(made, nowhere / "old.pt", dataset="synthetic"))
    assert seg.classes == class_names("synthetic") and np.array_equal(seg.palette, palette("synthetic"))
    assert seg.frame_size is None and not seg.meta.stored
    assert np.array_equal(seg.labels(made["frames"]), made["expected"])  # same weights


def test_an_old_folder_checkpoint_without_a_root_is_one_clear_line(made, nowhere):
    from etc.deploy.export import export_model

    old = _without_meta(made, nowhere / "old.pt")
    with pytest.raises(EtcError, match="carries no class list .* no root is known; retrain it, or pass --config "
                                       "with dataset.root") as err:
        etc.load(old)
    assert "\n" not in str(err.value) and str(old) in str(err.value)
    from etc.core.io import write_png

    write_png(nowhere / "frames" / "0001.png", made["frames"][0])
    res = _etc("segment-video", "frames", "--model", old, "--out", "x.mp4")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    r = export_model(old, nowhere / "m.pt", "torchscript", frames=None)  # export needs no classes
    assert all(p["generated"] for p in r["parity"].values())


def test_unknown_output_extension_and_mixed_frame_sizes_are_one_line_errors(made, nowhere):
    from etc.core.io import write_png
    from etc.deploy.segment_video import segment_video

    cfg = etc.load(made["ckpt"]).config
    for i, img in enumerate(made["frames"][:3]):
        write_png(nowhere / "frames" / f"{i:04d}.png", img if i < 2 else img[:40, :80])
    for out in ("x.webm", "x", "x.gif"):
        with pytest.raises(EtcError, match=r"writes \.mp4, \.mkv, \.mov or \.avi files") as err:
            segment_video(cfg, nowhere / "frames", made["ckpt"], nowhere / out, progress=False)
        assert "\n" not in str(err.value)
    with pytest.raises(EtcError) as err:
        segment_video(cfg, nowhere / "frames", made["ckpt"], nowhere / "x.mp4", progress=False)
    text = str(err.value)
    assert "\n" not in text and str(nowhere / "frames" / "0002.png") in text and "80×40" in text and "96×48" in text
    assert not (nowhere / "x.mp4").exists()
    r = segment_video(cfg, nowhere / "frames", made["ckpt"], nowhere / "x.mp4", size=(48, 96), estimator=None,
                      progress=False)  # resizing every frame makes them one size
    assert r["frames"] == 3
    res = _etc("segment-video", "frames", "--model", made["ckpt"], "--out", "x.gif")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and ".mp4" in res.stderr, res.stderr
