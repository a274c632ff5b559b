"""Every subcommand against a corpus of broken inputs, generated here: no traceback, no exit 0
where an error is due, no message over five lines, and each message names what is wrong.

The corpus covers each kind of mistake issue 26 lists: config values the schema used to let
through, files of the wrong kind where another is expected, devices, datasets that should be
refused, outputs that cannot be written, checkpoints that are not what they claim. Commands run
in-process through click (a subprocess per case would cost a torch import each).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from etc.core.errors import EtcError

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 5


@dataclass
class Case:
    id: str
    args: list
    expect: str = "error"  # "error": exit ≠ 0 with a message; "ok": exit 0
    says: tuple = ()  # substrings the message must hold (the file, key or value at fault)


def run_etc(args: list) -> tuple[int, str, BaseException | None]:
    """Exit code and message of `etc ARGS` as main() reports them; the third item is an
    exception main() would print as a traceback (None when there is none)."""
    from etc.cli import cli

    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)
    exc = res.exception
    if isinstance(exc, EtcError):
        return 2, f"error: {exc}", None
    if exc is not None and not isinstance(exc, SystemExit):
        return 1, res.output, exc
    return res.exit_code, res.output, None


# --------------------------------------------------------------------------- the valid world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny synthetic set, its config, a one-iteration checkpoint, its predictions, a flow
    store and a metrics JSON: the valid inputs each broken one stands in for."""
    from etc.core.config import load_config
    from etc.data.synthetic import make_synthetic
    from etc.flow.precompute import precompute_flow
    from etc.infer.predict import infer
    from etc.models import build_model
    from etc.models.checkpoint import save_checkpoint

    tmp = tmp_path_factory.mktemp("world")
    root = tmp / "syn"
    make_synthetic(root, train_clips=1, val_clips=1, frames=4, height=32, width=64, seed=0)
    raw = {"dataset": {"root": str(root), "window": [-1, 1]},
           "teacher": {"backbone": "tiny", "width": 0.25, "head_channels": 8},
           "students": {"s": {"backbone": "tiny", "width": 0.25, "head_channels": 8}},
           "ablations": {"baseline": {"ce": 1.0}, "kd": {"ce": 1.0, "pi": 1.0}},
           "train": {"student": {"iterations": 1, "batch_size": 2}, "teacher": {"iterations": 1, "batch_size": 2}},
           "infer": {"batch_size": 2, "warmup": 0}, "evaluate": {"num_workers": 0}}
    cfg_path = tmp / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    config = load_config(cfg_path)
    spec = config["students"]["s"]
    ckpt = tmp / "model.pt"
    save_checkpoint(ckpt, {"model": build_model(spec, 9).state_dict(), "spec": spec, "num_classes": 9,
                           "dataset": "synthetic", "run": "s/baseline"})
    flow = tmp / "val.h5"
    precompute_flow(config, "val", flow, estimator="gt", progress=False)
    preds = tmp / "pred.h5"
    infer(config, ckpt, "val", preds, device="cpu", progress=False)
    metrics_dir = tmp / "metrics"
    code, out, exc = run_etc(["evaluate", "--config", cfg_path, "--predictions", preds, "--flow", flow,
                              "--out", metrics_dir / "teacher.json"])
    assert code == 0 and exc is None, out
    return {"tmp": tmp, "root": root, "config": cfg_path, "raw": raw, "ckpt": ckpt, "flow": flow,
            "preds": preds, "metrics": metrics_dir / "teacher.json"}


def _write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def wrong_files(tmp: Path, w: dict) -> dict[str, Path]:
    """Files of every wrong kind, by name."""
    d = tmp / "wrong"
    files = {
        "empty": _write(d / "empty.h5", b""),
        "text": _write(d / "notes.h5", "just some text\n"),
        "random": _write(d / "random.h5", np.random.default_rng(0).bytes(4096)),
        "json": _write(d / "metrics.h5", json.dumps({"miou": 1.0})),
        "png": d / "image.h5",
        "truncated_h5": _write(d / "truncated.h5", w["preds"].read_bytes()[:1500]),
        "foreign_h5": d / "foreign.h5",
        "flow_store": w["flow"],
        "predictions": w["preds"],
        "checkpoint": w["ckpt"],
    }
    from etc.core.io import write_png

    write_png(files["png"].with_suffix(".png"), np.zeros((4, 4), np.uint8))
    shutil.move(files["png"].with_suffix(".png"), files["png"])
    with h5py.File(files["foreign_h5"], "w") as h5:
        h5.create_group("stuff").create_dataset("x", data=np.zeros(3))
    return files


# --------------------------------------------------------------------------- the corpus


def config_cases(w: dict) -> list[Case]:
    """Broken configs, each given to `etc config` and to `etc model-info` (both read a config and
    nothing else, so the config is what fails)."""
    tmp = w["tmp"] / "configs"
    tmp.mkdir(exist_ok=True)
    texts = {
        "nan_lr": ("train:\n  student:\n    lr: .nan\n", ("train.student.lr", "nan")),
        "inf_lr": ("train:\n  teacher:\n    lr: .inf\n", ("train.teacher.lr", "inf")),
        "nan_flow_scale": ("flow:\n  scale: .nan\n", ("flow.scale",)),
        "inf_temperature": ("losses:\n  temperature: .inf\n", ("losses.temperature",)),
        "nan_fps": ("report:\n  fps: .nan\n", ("report.fps",)),
        "nan_ablation_weight": ("ablations:\n  a: {ce: .nan}\n", ("ablations.a.ce",)),
        "nan_in_list": ("losses:\n  ce_weights: [1.0, .nan]\n", ("losses.ce_weights",)),
        "duplicate_top_key": ("report: {fps: 3}\nreport: {fps: 4}\n", ("report", "twice")),
        "duplicate_nested_key": ("train:\n  student:\n    lr: 0.1\n    lr: 0.2\n", ("lr", "twice")),
        "student_with_slash": ("students:\n  a/b: {backbone: tiny}\n", ("students", "a/b")),
        "ablation_with_slash": ("ablations:\n  x/y: {ce: 1.0}\n", ("ablations", "x/y")),
        "student_with_dot": ("students:\n  a.b: {backbone: tiny}\n", ("students", "a.b")),
        "student_leading_dash": ("students:\n  -x: {backbone: tiny}\n", ("students",)),
        "ablation_with_space": ("ablations:\n  'my run': {ce: 1.0}\n", ("ablations",)),
        "unknown_top_key": ("bogus: 1\n", ("bogus",)),
        "unknown_nested_key": ("infer:\n  batchsize: 4\n", ("batchsize",)),
        "bad_estimator": ("flow:\n  estimator: farneback\n", ("flow.estimator", "farneback")),
        "string_batch": ("train:\n  student:\n    batch_size: eight\n", ("batch_size",)),
        "negative_lr": ("train:\n  student:\n    lr: -1\n", ("lr",)),
        "zero_fps": ("report:\n  fps: 0\n", ("report.fps",)),
        "empty_students": ("students: {}\n", ("students",)),
        "empty_ablations": ("ablations: {}\n", ("ablations",)),
        "bad_backbone": ("teacher: {backbone: resnet9000}\n", ("teacher.backbone", "resnet9000")),
        "ablation_without_ce": ("ablations:\n  a: {tl: 1.0}\n", ("ce",)),
        "unknown_loss_term": ("ablations:\n  a: {ce: 1.0, xx: 1.0}\n", ("xx",)),
        "unknown_flow_study_student": ("flow_study: {student: nobody}\n", ("flow_study.student", "nobody")),
        "yaml_syntax": ("train: [1\n", ("not valid YAML",)),
        "yaml_tabs": ("train:\n\tstudent: 1\n", ("not valid YAML",)),
        "a_list": ("- 1\n- 2\n", ("mapping", "list")),
        "a_scalar": ("42\n", ("mapping", "int")),
        "a_string": ("hello\n", ("mapping", "str")),
        "seed_study_one_seed": ("seed_study: {seeds: [0]}\n", ("seed_study.seeds",)),
        "window_zero": ("dataset: {window: [0]}\n", ("dataset.window",)),
    }
    cases = []
    for name, (text, says) in texts.items():
        path = _write(tmp / f"{name}.yaml", text)
        cases.append(Case(f"config/{name}", ["config", "--config", path], says=(str(path), *says)))
        cases.append(Case(f"model-info/{name}", ["model-info", "--config", path], says=(str(path), *says)))
    binary = _write(tmp / "binary.yaml", b"\xff\xfe\x00\x81binary")
    cases += [
        Case("config/not_utf8", ["config", "--config", binary], says=(str(binary), "text")),
        Case("model-info/not_utf8", ["model-info", "--config", binary], says=(str(binary), "text")),
        Case("config/json_list", ["config", "--json", "[1, 2]"], says=("--json", "list")),
        Case("config/json_string", ["config", "--json", '"x"'], says=("--json", "str")),
        Case("config/json_invalid", ["config", "--json", "{nope"], says=("--json",)),
        Case("config/json_nan", ["config", "--json", '{"report": {"fps": NaN}}'], says=("report.fps",)),
        Case("config/missing_file", ["config", "--config", tmp / "nope.yaml"], says=("nope.yaml",)),
        Case("config/a_folder", ["config", "--config", tmp], says=(str(tmp),)),
        Case("config/odd_but_valid", ["config", "--json", '{"report": {"fps": 2.5}}'], expect="ok"),
    ]
    return cases


def file_kind_cases(w: dict) -> list[Case]:
    """A file of each wrong kind where predictions, a flow store, a checkpoint, metrics or a
    curves CSV is expected."""
    files = wrong_files(w["tmp"], w)
    cfg, out = w["config"], w["tmp"] / "out"
    cases = []
    for kind, path in files.items():
        if kind != "predictions":
            cases.append(Case(f"evaluate/predictions_is_{kind}",
                              ["evaluate", "--config", cfg, "--predictions", path, "--flow", w["flow"],
                               "--out", out / f"e_{kind}.json"], says=(str(path),)))
            cases.append(Case(f"demo-video/models_is_{kind}",
                              ["demo-video", "--config", cfg, "--models", f"m={path}", "--flow", w["flow"],
                               "--out", out / f"d_{kind}.mp4"], says=(str(path),)))
        if kind != "flow_store":
            cases.append(Case(f"evaluate/flow_is_{kind}",
                              ["evaluate", "--config", cfg, "--predictions", w["preds"], "--flow", path,
                               "--out", out / f"f_{kind}.json"], says=(str(path),)))
            cases.append(Case(f"flow-quality/flow_is_{kind}",
                              ["flow-quality", "--flow", path, "--reference", w["flow"], "--out", out / f"q_{kind}.json"],
                              says=(str(path),)))
            cases.append(Case(f"demo-video/flow_is_{kind}",
                              ["demo-video", "--config", cfg, "--models", f"m={w['preds']}", "--flow", path,
                               "--out", out / f"v_{kind}.mp4"], says=(str(path),)))
        if kind != "checkpoint":
            cases.append(Case(f"infer/model_is_{kind}",
                              ["infer", "--config", cfg, "--model", path, "--out", out / f"i_{kind}.h5"],
                              says=(str(path),)))
            cases.append(Case(f"evaluate/model_is_{kind}",
                              ["evaluate", "--config", cfg, "--predictions", w["preds"], "--flow", w["flow"],
                               "--model", path, "--out", out / f"m_{kind}.json"], says=(str(path),)))
    stripped = w["tmp"] / "wrong" / "no_image_size.h5"
    shutil.copy(w["flow"], stripped)
    with h5py.File(stripped, "a") as h5:
        del h5.attrs["image_size"]
    cases.append(Case("evaluate/flow_without_an_attribute",
                      ["evaluate", "--config", cfg, "--predictions", w["preds"], "--flow", stripped,
                       "--out", out / "stripped.json"], says=(str(stripped), "image_size")))
    for name, shape in (("fw", lambda s: (3, *s[1:])), ("occ_fw", lambda s: (s[0] // 2, s[1]))):
        reshaped = w["tmp"] / "wrong" / f"{name}_reshaped.h5"
        shutil.copy(w["flow"], reshaped)
        with h5py.File(reshaped, "a") as h5:
            clip = next(iter(h5))
            key = next(iter(h5[clip]))
            pair = h5[clip][key]
            old = pair[name]
            wrong, dtype = shape(old.shape), old.dtype
            del pair[name]
            pair.create_dataset(name, data=np.zeros(wrong, dtype))
        says = (str(reshaped), clip, key, name, "×".join(map(str, wrong)))
        cases.append(Case(f"evaluate/flow_{name}_of_another_shape",
                          ["evaluate", "--config", cfg, "--predictions", w["preds"], "--flow", reshaped,
                           "--out", out / f"{name}_reshaped.json"], says=says))
        cases.append(Case(f"flow-quality/flow_{name}_of_another_shape",
                          ["flow-quality", "--flow", reshaped, "--reference", w["flow"],
                           "--out", out / f"q_{name}_reshaped.json"], says=says))
    floats = w["tmp"] / "wrong" / "float_predictions.h5"
    with h5py.File(w["preds"], "r") as src, h5py.File(floats, "w") as dst:
        dst.attrs.update(dict(src.attrs))
        for name in src:
            dst.create_dataset(name, data=src[name][()].astype(np.float32)).attrs.update(dict(src[name].attrs))
    says = (str(floats), "float32", "class ids")
    cases += [
        Case("evaluate/float_predictions", ["evaluate", "--config", cfg, "--predictions", floats, "--flow", w["flow"],
                                            "--out", out / "floats.json"], says=says),
        Case("demo-video/float_predictions", ["demo-video", "--config", cfg, "--models", f"m={floats}",
                                              "--flow", w["flow"], "--out", out / "floats.mp4"], says=says),
        Case("keyframe-score/float_predictions",
             ["keyframe-score", "--config", cfg, "--predictions", floats, "--interval", "1", "--metrics", w["metrics"],
              "--timing", w["preds"].with_suffix(".timing.json"), "--run", "teacher", "--out", out / "k.json"],
             says=says),
    ]
    cases += checkpoint_cases(w) + metrics_cases(w) + [
        Case("evaluate/ok", ["evaluate", "--config", cfg, "--predictions", w["preds"], "--flow", w["flow"],
                             "--out", out / "fine.json"], expect="ok"),
        Case("precompute-flow/garbage_in_out",
             ["precompute-flow", "--config", cfg, "--split", "val", "--estimator", "gt",
              "--out", _write(out / "garbage.h5", b"garbage")], says=("garbage.h5",)),
    ]
    return cases


def checkpoint_cases(w: dict) -> list[Case]:
    import torch

    d, cfg = w["tmp"] / "ckpts", w["config"]
    d.mkdir(exist_ok=True)
    state = torch.load(w["ckpt"], weights_only=True)
    marker = d / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    variants = {
        "spec_not_mapping": {**state, "spec": "pspnet"},
        "model_not_mapping": {**state, "model": [1, 2]},
        "no_spec": {k: v for k, v in state.items() if k != "spec"},
        "num_classes_text": {**state, "num_classes": "nine"},
        "other_class_count": {**state, "num_classes": 5},
        "not_a_dict": [1, 2, 3],
    }
    paths = {}
    for name, value in variants.items():
        paths[name] = d / f"{name}.pt"
        torch.save(value, paths[name])
    paths["malicious_pickle"] = _write(d / "evil.pt", pickle.dumps(Evil()))
    paths["malicious_torch"] = d / "evil_torch.pt"
    torch.save({"model": Evil(), "spec": {}}, paths["malicious_torch"])
    cases = [Case(f"infer/checkpoint_{name}", ["infer", "--config", cfg, "--model", p, "--out", d / f"{name}.h5"],
                  says=(str(p),)) for name, p in paths.items()]
    cases += [Case(f"train/teacher_{name}", ["train", "--config", cfg, "--run", "s/kd", "--teacher", p,
                                             "--out", d / f"t_{name}.pt"], says=(str(p),))
              for name, p in paths.items() if name in ("spec_not_mapping", "malicious_torch", "not_a_dict")]
    cases.append(Case("infer/backbone_weights_with_objects",
                      ["infer", "--config", _backbone_config(w, d), "--model", w["ckpt"], "--out", d / "bw.h5"],
                      expect="ok"))  # a checkpoint never reads the backbone weights
    cases.append(Case("train/backbone_weights_with_objects",
                      ["train", "--config", _backbone_config(w, d), "--run", "s/baseline", "--out", d / "bw.pt"],
                      says=("evil_weights.pt", "tensors")))
    return cases


def _backbone_config(w: dict, d: Path) -> Path:
    import torch

    weights = d / "evil_weights.pt"
    torch.save({"conv1.weight": torch.zeros(1), "meta": object.__new__(_Meta)}, weights)
    raw = json.loads(json.dumps(w["raw"]))
    raw["students"]["s"]["pretrained"] = str(weights)
    return _write(d / "backbone.yaml", yaml.safe_dump(raw))


class _Meta:
    """A Python object inside a weights file: a safe load refuses it."""


def metrics_cases(w: dict) -> list[Case]:
    """Broken metrics JSONs and curves CSVs under `etc report` (one run, the teacher: the config's
    students are trained nowhere here, so the report is given a teacher-only config)."""
    raw = json.loads(json.dumps(w["raw"]))
    raw["ablations"] = {"baseline": {"ce": 1.0}}  # runs: teacher and s/baseline
    cases = []
    good = json.loads(w["metrics"].read_text())
    curves_ok = "iteration,lr,ce\n0,0.01,1.0\n1,0.01,0.9\n"
    variants = {
        "a_list": "[1, 2]",
        "empty": "",
        "string_values": json.dumps({**good, "miou": "high"}),
        "nan_values": json.dumps({**good, "miou": float("nan")}),
        "inf_tc": json.dumps({**good, "tc": float("inf")}),
        "no_miou": json.dumps({k: v for k, v in good.items() if k != "miou"}),
        "other_dataset": json.dumps({**good, "dataset": "cityscapes"}),
        "binary": b"\x00\x81\xff" * 10,
    }
    for name, content in variants.items():
        d = w["tmp"] / "report" / name
        mdir, cdir = d / "metrics", d / "curves"
        _write(mdir / "teacher.json", content)
        for run in ("s/baseline",):
            _write(mdir / f"{run}.json", w["metrics"].read_text())
            _write(cdir / f"{run}.csv", curves_ok)
        _write(cdir / "teacher.csv", curves_ok)
        cfg = _write(d / "config.yaml", yaml.safe_dump(raw))
        cases.append(Case(f"report/metrics_{name}", ["report", "--config", cfg, "--metrics-dir", mdir,
                                                     "--curves-dir", cdir, "--table", d / "t.csv", "--out-dir", d / "fig"],
                          says=("teacher.json",)))
    mixed = {  # teacher.json, s/baseline.json: one table of two metrics, or one run twice
        "flow": ({**good, "flow_eval": "dis"}, {**good, "flow_eval": "gt"}, ("dis", "gt", "evaluate.flow_estimator")),
        "run": ({**good, "run": "s/baseline"}, {**good, "run": "s/baseline"}, ("'s/baseline'",)),
    }
    for name, (teacher, student, says) in mixed.items():
        d = w["tmp"] / "report" / f"mixed_{name}"
        mdir, cdir = d / "metrics", d / "curves"
        _write(mdir / "teacher.json", json.dumps(teacher))
        _write(mdir / "s" / "baseline.json", json.dumps(student))
        for run in ("teacher", "s/baseline"):
            _write(cdir / f"{run}.csv", curves_ok)
        cfg = _write(d / "config.yaml", yaml.safe_dump(raw))
        cases.append(Case(f"report/mixed_{name}", ["report", "--config", cfg, "--metrics-dir", mdir,
                                                   "--curves-dir", cdir, "--table", d / "t.csv", "--out-dir", d / "fig"],
                          says=(str(mdir / "teacher.json"), str(mdir / "s" / "baseline.json"), *says)))
    for name, content in {"binary": b"\x00\x81\xff" * 10, "no_iteration": "a,b\n1,2\n", "empty": ""}.items():
        d = w["tmp"] / "report" / f"curves_{name}"
        mdir, cdir = d / "metrics", d / "curves"
        for run in ("teacher", "s/baseline"):
            _write(mdir / f"{run}.json", w["metrics"].read_text())
            _write(cdir / f"{run}.csv", curves_ok)
        _write(cdir / "teacher.csv", content)
        cfg = _write(d / "config.yaml", yaml.safe_dump(raw))
        cases.append(Case(f"report/curves_{name}", ["report", "--config", cfg, "--metrics-dir", mdir,
                                                    "--curves-dir", cdir, "--table", d / "t.csv", "--out-dir", d / "fig"],
                          says=("teacher.csv",)))
    return cases


def device_cases(w: dict) -> list[Case]:
    import torch

    if torch.cuda.is_available():
        return []
    cfg, out = w["config"], w["tmp"] / "dev"
    cases = []
    for dev in ("cuda", "cuda:3", "tpu", "gpu", "banana"):
        cases.append(Case(f"infer/device_{dev}", ["infer", "--config", cfg, "--model", w["ckpt"], "--device", dev,
                                                  "--out", out / f"{dev}.h5"], says=(dev,)))
        cases.append(Case(f"train/device_{dev}", ["train", "--config", cfg, "--run", "s/baseline", "--device", dev,
                                                  "--out", out / f"{dev}.pt"], says=(dev,)))
    cases.append(Case("precompute-flow/device_tpu", ["precompute-flow", "--config", cfg, "--split", "val",
                                                      "--estimator", "gt", "--device", "tpu", "--out", out / "f.h5"],
                      says=("tpu",)))
    cases.append(Case("bench/device_cuda", ["bench", "--config", cfg, "--device", "cuda", "--quick",
                                            "--out", out / "b.csv"], says=("cuda",)))
    return cases


def dataset_cases(w: dict) -> list[Case]:
    """Trees that must be refused by check-data (each a copy of the valid one, broken once)."""
    from etc.data.clips import list_clips

    cases = []
    val = list_clips("synthetic", w["root"], "val")[0]

    def broken(name: str) -> Path:
        root = w["tmp"] / "trees" / name
        if not root.exists():
            shutil.copytree(w["root"], root)
        return root

    def rel(p) -> Path:
        return Path(p).relative_to(w["root"])

    # a city folder duplicated under another name
    root = broken("duplicated_city")
    first = rel(val.frames[0].image)
    city_dir = root / first.parent
    shutil.copytree(city_dir, city_dir.with_name(city_dir.name + "copy"))
    for f in city_dir.with_name(city_dir.name + "copy").iterdir():
        f.rename(f.with_name(f.name.replace(city_dir.name, city_dir.name + "copy")))
    cases.append(Case("check-data/duplicated_city", ["check-data", "--root", root], says=("same content",)))
    # the same city folder copied under another name, its files unchanged (frames, then labels)
    for sub, f in (("frames", val.frames[0].image), ("labels", val.frames[val.labelled[0]].label)):
        root = broken(f"copied_city_{sub}")
        city_dir = root / rel(f).parent
        shutil.copytree(city_dir, city_dir.with_name(city_dir.name + "2"))
        cases.append(Case(f"check-data/copied_city_{sub}", ["check-data", "--root", root],
                          says=(city_dir.name + "2", f"'{city_dir.name}'", "copied")))
    # the sparse label of a clip missing (synthetic: one per clip; Cityscapes: one per snippet)
    root = broken("missing_sparse_label")
    label = root / rel(val.frames[val.labelled[0]].label)
    label.unlink()
    cases.append(Case("check-data/missing_sparse_label", ["check-data", "--root", root], says=(str(label), val.name)))
    from conftest import make_cityscapes_tree

    root = make_cityscapes_tree(w["tmp"] / "trees" / "cityscapes_missing_label")
    label = root / "gtFine" / "train" / "frankfurt" / "frankfurt_000000_000294_gtFine_labelIds.png"
    label.unlink()
    cases.append(Case("check-data/cityscapes_missing_label", ["check-data", "--dataset", "cityscapes", "--root", root],
                      says=(str(label), "frankfurt_000000", "275")))
    # a label saved as JPEG under a .png name
    root = broken("jpeg_label")
    label = root / rel(val.frames[val.labelled[0]].label)
    import cv2

    img = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    ok, buf = cv2.imencode(".jpg", img)
    label.write_bytes(buf.tobytes())
    cases.append(Case("check-data/jpeg_label", ["check-data", "--root", root], says=(label.name, "JPEG")))
    # a missing dense label (the synthetic set has one per frame: mVC reads them)
    dense = [f.dense_label for f in val.frames if f.dense_label is not None and f.dense_label != f.label]
    if dense:
        root = broken("missing_dense")
        (root / rel(dense[0])).unlink()
        cases.append(Case("check-data/missing_dense_label", ["check-data", "--root", root], says=(Path(dense[0]).name,)))
    # a corrupt frame
    root = broken("corrupt_frame")
    frame = root / rel(val.frames[1].image)
    frame.write_bytes(frame.read_bytes()[:60])
    cases.append(Case("check-data/corrupt_frame", ["check-data", "--root", root], says=(frame.name,)))
    cases += [
        Case("check-data/splits_comma", ["check-data", "--root", w["root"], "--splits", ","], says=("split",)),
        Case("check-data/splits_empty", ["check-data", "--root", w["root"], "--splits", ""], says=("split",)),
        Case("check-data/unknown_split", ["check-data", "--root", w["root"], "--splits", "nosuch"], says=("nosuch",)),
        Case("check-data/missing_root", ["check-data", "--root", w["tmp"] / "nowhere"], says=("nowhere",)),
        Case("check-data/root_is_file", ["check-data", "--root", w["ckpt"]], says=(str(w["ckpt"]),)),
        Case("check-data/ok", ["check-data", "--root", w["root"]], expect="ok"),
    ]
    return cases


def output_cases(w: dict) -> list[Case]:
    """Outputs that cannot be written: refused before the work."""
    blocker = _write(w["tmp"] / "blocker", "a file where a folder should be")
    cfg = w["config"]
    return [
        Case("bench/impossible_out", ["bench", "--config", cfg, "--quick", "--out", blocker / "b.csv"],
             says=(str(blocker),)),
        Case("infer/impossible_timing", ["infer", "--config", cfg, "--model", w["ckpt"], "--out", w["tmp"] / "ok.h5",
                                         "--timing", blocker / "t.json"], says=(str(blocker),)),
        Case("infer/out_is_folder", ["infer", "--config", cfg, "--model", w["ckpt"], "--out", w["tmp"]],
             says=(str(w["tmp"]),)),
        Case("evaluate/impossible_out", ["evaluate", "--config", cfg, "--predictions", w["preds"], "--flow", w["flow"],
                                         "--out", blocker / "m.json"], says=(str(blocker),)),
        Case("demo-video/nan_fps", ["demo-video", "--config", cfg, "--models", f"m={w['preds']}", "--flow", w["flow"],
                                    "--fps", "nan", "--out", w["tmp"] / "v.mp4"], says=("--fps",)),
        Case("demo-video/inf_fps", ["demo-video", "--config", cfg, "--models", f"m={w['preds']}", "--flow", w["flow"],
                                    "--fps", "inf", "--out", w["tmp"] / "v.mp4"], says=("--fps",)),
        Case("demo-video/out_without_suffix", ["demo-video", "--config", cfg, "--models", f"m={w['preds']}",
                                               "--flow", w["flow"], "--out", w["tmp"] / "video"],
             says=(str(w["tmp"] / "video"), "no extension", ".mp4")),
        Case("demo-video/out_is_gif", ["demo-video", "--config", cfg, "--models", f"m={w['preds']}",
                                       "--flow", w["flow"], "--out", w["tmp"] / "v.gif"], says=("v.gif", "'.gif'", ".mp4")),
        Case("segment-video/out_is_webm", ["segment-video", w["root"], "--model", w["ckpt"], "--out", w["tmp"] / "v.webm"],
             says=("v.webm", "'.webm'")),
        *model_list_cases(w),
        *huge_frame_cases(w),
        Case("precompute-flow/nan_scale", ["precompute-flow", "--config", cfg, "--split", "val", "--scale", "nan",
                                           "--out", w["tmp"] / "n.h5"], says=("--scale",)),
        Case("train/unknown_run", ["train", "--config", cfg, "--run", "s/nosuch", "--out", w["tmp"] / "x.pt"],
             says=("nosuch",)),
    ]


def huge_frame_cases(w: dict) -> list[Case]:
    """Frame sizes no machine holds (10¹² pixels): refused before any work, naming the option."""
    from etc.data.clips import list_clips

    big = ["--height", "1000000", "--width", "1000000"]
    raw = json.loads(json.dumps(w["raw"]))
    raw["augment"] = {"crop": [1000000, 1000000]}
    crop = _write(w["tmp"] / "huge" / "crop.yaml", yaml.safe_dump(raw))
    says = ("1000000×1000000", "memory")
    return [
        Case("segment-video/huge_frames", ["segment-video", Path(list_clips("synthetic", w["root"], "val")[0].frames[0].image).parent, "--model",
                                           w["ckpt"], *big, "--out", w["tmp"] / "huge" / "v.mp4"],
             says=(*says, "--height/--width")),
        Case("export/huge_frames", ["export", "--config", w["config"], "--model", w["ckpt"], "--format", "torchscript",
                                    *big, "--out", w["tmp"] / "huge" / "m.pt"], says=(*says, "--height/--width")),
        Case("make-synthetic/huge_frames", ["make-synthetic", "--out", w["tmp"] / "huge" / "syn", *big],
             says=(*says, "synthetic.height")),
        Case("train/huge_crop", ["train", "--config", crop, "--run", "s/baseline", "--out", w["tmp"] / "huge" / "s.pt"],
             says=(*says, "augment.crop")),
    ]


def model_list_cases(w: dict) -> list[Case]:
    """demo-video's --models: empty entries, a name twice, predictions of two datasets; and a flow
    store of another dataset than the config's."""
    cfg, d = w["config"], w["tmp"] / "lists"
    other = d / "cityscapes.h5"
    other.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(w["preds"], other)
    with h5py.File(other, "a") as h5:
        h5.attrs["dataset"] = "cityscapes"
    other_flow = d / "cityscapes_flow.h5"
    shutil.copy(w["flow"], other_flow)
    with h5py.File(other_flow, "a") as h5:
        h5.attrs["dataset"] = "cityscapes"

    def demo(name: str, models: str, says: tuple) -> Case:
        return Case(f"demo-video/{name}", ["demo-video", "--config", cfg, "--models", models, "--flow", w["flow"],
                                           "--out", d / f"{name}.mp4"], says=says)

    p = w["preds"]
    return [
        demo("models_trailing_comma", f"{p},", ("--models", "entry 2", "empty", "trailing comma")),
        demo("models_only_a_comma", ",", ("--models", "entry 1", "empty")),
        demo("models_double_comma", f"a={p},,b={p}", ("--models", "entry 2", "empty")),
        demo("models_name_without_path", "a=", ("--models", "without a path")),
        demo("models_same_name", f"a={p},a={other}", ("--models", "'a'", str(p), str(other))),
        demo("models_same_stem", f"{p},{other.with_name(p.name)}", ("--models", f"'{p.stem}'")),
        demo("models_of_two_datasets", f"a={p},b={other}", (str(p), str(other), "synthetic", "cityscapes")),
        demo("models_of_another_dataset", f"b={other}", (str(other), "cityscapes", "synthetic", "--config")),
        Case("demo-video/flow_of_another_dataset", ["demo-video", "--config", cfg, "--models", f"m={p}",
                                                    "--flow", other_flow, "--out", d / "flow.mp4"],
             says=(str(other_flow), "dataset", "cityscapes", "synthetic")),
    ]


def reach_cases(w: dict) -> list[Case]:
    """segment-video, export and score: not a video, an empty folder, a wrong checkpoint,
    predictions whose names or values do not fit."""
    from etc.core.io import write_png
    from etc.data.clips import list_clips

    d, cfg = w["tmp"] / "reach", w["config"]
    files = wrong_files(w["tmp"], w)
    empty = d / "empty_dir"
    empty.mkdir(parents=True, exist_ok=True)
    clip = list_clips("synthetic", w["root"], "val")[0]
    frames = d / "frames" / clip.name
    preds = d / "preds" / clip.name
    for f in clip.frames:
        frames.mkdir(parents=True, exist_ok=True)
        shutil.copy(f.image, frames / f"{f.number:06d}.png")
        write_png(preds / f"{f.number:06d}.png", np.zeros((32, 64), np.uint8))
    misnamed = d / "misnamed" / clip.name
    shutil.copytree(preds, misnamed)
    next(misnamed.iterdir()).rename(misnamed / "999999.png")
    foreign = d / "foreign" / clip.name
    for f in clip.frames:
        write_png(foreign / f"{f.number:06d}.png", np.full((32, 64), 200, np.uint8))
    cases = [
        Case("segment-video/input_is_text", ["segment-video", files["text"], "--model", w["ckpt"], "--out", d / "a.mp4"],
             says=(str(files["text"]),)),
        Case("segment-video/input_is_empty_folder", ["segment-video", empty, "--model", w["ckpt"], "--out", d / "b.mp4"],
             says=(str(empty),)),
        Case("segment-video/model_is_flow_store", ["segment-video", frames, "--model", w["flow"], "--out", d / "c.mp4"],
             says=(str(w["flow"]),)),
        Case("segment-video/device_tpu", ["segment-video", frames, "--model", w["ckpt"], "--device", "tpu",
                                          "--out", d / "e.mp4"], says=("tpu",)),
        Case("export/model_is_predictions", ["export", "--config", cfg, "--model", w["preds"], "--format", "torchscript",
                                             "--out", d / "m.pt"], says=(str(w["preds"]),)),
        Case("export/frames_is_empty_folder", ["export", "--config", cfg, "--model", w["ckpt"], "--format", "torchscript",
                                               "--frames", empty, "--out", d / "n.pt"], says=(str(empty),)),
        Case("score/names_do_not_match", ["score", "--predictions", misnamed.parent, "--frames", frames.parent,
                                          "--flow-estimator", "dis", "--out", d / "s1.json"], says=("no prediction",)),
        Case("score/ids_too_large", ["score", "--predictions", foreign.parent, "--frames", frames.parent,
                                     "--out", d / "s2.json"], says=("200",)),
        Case("score/empty_predictions", ["score", "--predictions", empty, "--frames", frames.parent,
                                         "--out", d / "s3.json"], says=(str(empty),)),
        Case("score/flow_is_predictions", ["score", "--predictions", preds.parent, "--frames", frames.parent,
                                           "--flow", w["preds"], "--out", d / "s4.json"], says=(str(w["preds"]),)),
        Case("score/impossible_out", ["score", "--predictions", preds.parent, "--frames", frames.parent,
                                      "--out", _write(d / "blocker", "x") / "s.json"], says=("blocker",)),
        Case("score/ok", ["score", "--predictions", preds.parent, "--frames", frames.parent, "--out", d / "ok.json"],
             expect="ok"),
    ]
    return cases


def corpus(w: dict) -> list[Case]:
    return (config_cases(w) + file_kind_cases(w) + device_cases(w) + dataset_cases(w) + output_cases(w)
            + reach_cases(w))


def test_every_subcommand_meets_broken_input_with_a_short_clear_error(world, monkeypatch):
    monkeypatch.chdir(world["tmp"])  # no ./config.yaml of the checkout is read
    cases = corpus(world)
    assert len(cases) >= 100, len(cases)
    assert len({c.id for c in cases}) == len(cases)
    failures = []
    for case in cases:
        code, message, exc = run_etc(case.args)
        lines = message.strip().splitlines()
        if exc is not None:
            failures.append(f"{case.id}: traceback {type(exc).__name__}: {str(exc)[:200]}")
        elif case.expect == "ok" and code != 0:
            failures.append(f"{case.id}: exit {code}, expected success: {message.strip()[:300]}")
        elif case.expect == "error" and code == 0:
            failures.append(f"{case.id}: exit 0 where an error is due: {message.strip()[:200]}")
        elif case.expect == "error" and len(lines) > MAX_LINES:
            failures.append(f"{case.id}: {len(lines)} lines of message")
        elif case.expect == "error" and not all(s in message for s in case.says):
            failures.append(f"{case.id}: message lacks {[s for s in case.says if s not in message]}: {message.strip()[:300]}")
        elif case.expect == "error" and "weights_only=False" in message:
            failures.append(f"{case.id}: suggests weights_only=False")
    assert not (world["tmp"] / "ckpts" / "pwned").exists(), "a pickle in a checkpoint ran code"
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)


def test_a_report_without_training_curves_writes_the_table(world, tmp_path):
    """No training CSV (an empty curves folder, or none given): the table and every figure are
    written, the training-curves figure saying why it is empty; a curves folder that does not
    exist is still an error naming it."""
    raw = json.loads(json.dumps(world["raw"]))
    raw["ablations"] = {"baseline": {"ce": 1.0}}
    cfg = _write(tmp_path / "config.yaml", yaml.safe_dump(raw))
    mdir = tmp_path / "metrics"
    for run in ("teacher", "s/baseline"):
        _write(mdir / f"{run}.json", world["metrics"].read_text())
    (tmp_path / "curves").mkdir()
    for name, curves in (("empty", ["--curves-dir", tmp_path / "curves"]), ("none", [])):
        out = tmp_path / name
        code, message, exc = run_etc(["report", "--config", cfg, "--metrics-dir", mdir, *curves,
                                      "--table", out / "t.csv", "--out-dir", out / "fig"])
        assert code == 0 and exc is None, message
        assert (out / "t.csv").is_file() and (out / "fig" / "training_curves.png").is_file()
    code, message, exc = run_etc(["report", "--config", cfg, "--metrics-dir", mdir, "--curves-dir", tmp_path / "nope",
                                  "--table", tmp_path / "t.csv", "--out-dir", tmp_path / "fig"])
    assert code != 0 and exc is None and "nope" in message and len(message.strip().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("refuses", ["create", "rename", "mkdir"])
def test_a_read_only_results_folder_is_named_in_one_line(world, tmp_path, monkeypatch, refuses):
    """A folder that refuses writes although os.access allows them (root ignores permission
    bits; network file systems decide on the server): the atomic writes of etc.core.io name the
    folder. The refusal is simulated where the write meets the file system."""
    import errno
    import tempfile

    ro = tmp_path / "results"
    ro.mkdir()

    def refused(target) -> bool:
        return Path(target).resolve().is_relative_to(ro.resolve())

    def deny(*_):
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS))

    mkstemp, replace, mkdir = tempfile.mkstemp, os.replace, Path.mkdir
    if refuses == "create":
        monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: deny() if refused(k["dir"]) else mkstemp(*a, **k))
    elif refuses == "rename":
        monkeypatch.setattr(os, "replace", lambda a, b: deny() if refused(b) else replace(a, b))
    else:
        monkeypatch.setattr(Path, "mkdir", lambda self, *a, **k: deny() if refused(self) else mkdir(self, *a, **k))
    out = ro / ("sub" if refuses == "mkdir" else "") / "m.json"
    code, message, exc = run_etc(["evaluate", "--config", world["config"], "--predictions", world["preds"],
                                  "--flow", world["flow"], "--out", out])
    assert code == 2 and exc is None, message
    assert len(message.strip().splitlines()) == 1 and str(out) in message, message
    assert f"folder {ro} is not writable" in message, message
    assert not list(ro.rglob("*.tmp*")), "a temporary file was left behind"


def test_an_allocation_that_fails_is_one_line_naming_the_size():
    """Past the up-front check (other processes' memory, the network's activations), each
    allocator's failure is turned into the same one-line error; anything else passes."""
    from etc.core.alloc import allocation

    failures = [MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't "
                                            "allocate memory: you tried to allocate 19200000000 bytes."),
                Exception("OpenCV(4.13.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate "
                          "60000000000 bytes in function 'OutOfMemoryError'"),
                RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")]
    for exc in failures:
        with pytest.raises(EtcError, match=r"cannot allocate memory for frames of 9×9.*; give a smaller --height"):
            with allocation("frames of 9×9", "give a smaller --height/--width"):
                raise exc
    with pytest.raises(ValueError), allocation("frames of 9×9", "give a smaller --height/--width"):
        raise ValueError("not about memory")


WORKFLOW_CASES = {
    "unknown_top_key": ("bogus_key: 1\n", [], ("bogus_key",)),
    "student_with_slash": ("students:\n  a/b: {backbone: tiny}\n", [], ("a/b",)),
    "duplicate_key": ("report: {fps: 3}\nreport: {fps: 4}\n", [], ("twice",)),
    "nan_value": ("train:\n  student:\n    lr: .nan\n", [], ("train.student.lr",)),
    "unknown_flow_study_ablation": ("flow_study: {ablations: [nope]}\n", ["flow_study"], ("nope",)),
}


@pytest.mark.parametrize("name", sorted(WORKFLOW_CASES))
def test_the_workflow_reports_a_bad_config_in_one_line(tmp_path, name):
    """Snakemake's own validate prints the whole schema (2,070 lines); the Snakefile reports the
    file, key and value."""
    text, targets, says = WORKFLOW_CASES[name]
    cfg = _write(tmp_path / f"{name}.yaml", text)
    res = subprocess.run([str(Path(sys.executable).with_name("snakemake")), *targets, "-n", "--quiet",
                          "--configfile", str(cfg)], capture_output=True, text=True, cwd=REPO)
    assert res.returncode != 0, res.stdout[-500:]
    errors = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(s in errors[0] for s in says), (res.stdout + res.stderr)[-2000:]
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) <= MAX_LINES + 2, res.stderr[-2000:]


@pytest.mark.parametrize("name", ["missing", "a_list", "yaml_syntax"])
def test_a_config_file_snakemake_cannot_read_fails_and_etc_config_names_it(tmp_path, name):
    """Snakemake reads --configfile before the Snakefile (no check of ours can run): it must
    still fail, and `etc config`, the documented check before it (docs/usage.md), names the file
    and the fault in one line."""
    cfg = tmp_path / f"{name}.yaml"
    if name != "missing":
        _write(cfg, {"a_list": "- 1\n- 2\n", "yaml_syntax": "train: [1\n"}[name])
    res = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "-n", "--quiet", "--configfile", str(cfg)],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode != 0, res.stdout[-500:]
    code, message, exc = run_etc(["config", "--config", cfg])
    assert code != 0 and exc is None and str(cfg) in message and len(message.strip().splitlines()) <= MAX_LINES, message
    assert "etc config --config my.yaml" in (REPO / "docs" / "usage.md").read_text()
