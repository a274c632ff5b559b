"""Peak host memory (RSS) of each stage's job against the ``mem_mb`` it declares (issue 39).

    PYTHONPATH=. python benchmarks/peak_rss.py [--preset workflow/configs/cityscapes.yaml]
        [--train-batch 2] [--iterations 1] [--stages check-data,flow,...] [--csv F] [--markdown F]

Writes a Cityscapes-layout tree at the preset's frame size (one training and one validation
snippet of 30 smooth, drifting frames and their gtFine labels: nothing is downloaded), resolves the
preset on it for the CPU (``resources.device: cpu``; the preset's threads, batch sizes, crop and
workers otherwise, iterations cut to ``--iterations``), then runs each stage's ``etc`` command as
its rule in workflow/rules/*.smk runs it, one subprocess at a time with ``OMP_NUM_THREADS`` set to
the rule's threads (as Snakemake does). A job's peak is the larger of: the sum of the RSS of the
process and all its descendants (decode workers, evaluation processes), polled every 50 ms, and
the process's own high-water mark (VmHWM, read at each poll: a peak between two polls).
Summing the RSS counts the pages the processes share once per process: it overstates what a
cgroup charges, never understates it.

Each row prints beside it the ``mem_mb`` etc/plan/resources.py declares for the same resolved
config, the ratio declared/measured and OK when measured ≤ declared ≤ 2 × measured.

What is not the preset's, and why (printed with the table):
- the flow estimator is DIS (the preset's RAFT needs its checkpoint, not at hand here);
- pretrained backbone weights are off (the weights' values do not change the memory);
- the training batch is ``--train-batch`` (default 2: at the preset's 8 the teacher's step at a
  769 crop holds more than this 24 GB machine), the declared figure is computed at that batch;
- ``infer`` runs the baseline student over the snippet (a full-resolution ResNet-101 over the
  30 frames with flip takes tens of minutes on 2 cores: ``infer-teacher`` runs it on 4); keyframe inference runs the preset's
  keyframe model (the teacher) at the preset's largest interval (the fewest forward passes),
  with ``--no-flip``, which a keyframe run requires (the rule does not pass it: the preset's
  ``infer.flip: true`` makes its keyframe jobs fail);
- evaluation of the one validation snippet runs in one process (``evaluate.num_workers: 0``: one
  snippet is one shard); ``evaluate-workers`` evaluates 8 generated snippets (labels,
  predictions and flow written directly, as benchmarks/bench_evaluate.py does) with 2 worker
  processes, the per-process figure the preset's 8 workers multiply;
- the streamed comparison and the report (``latency``, ``keyframe-score``, ``demo-video``,
  ``report``; they need ``train-teacher``, ``train-baseline`` and ``flow-consecutive`` earlier in
  the same run, or ``--keep``) run one row of each kind, not the preset's 17: the teacher and the
  baseline per frame, the teacher at keyframe interval 10 with score propagation (the preset's
  largest K: the most offset runs a score reads) and the baseline fused at strength 0.3;
  ``latency`` streams them over a 4-frame clip (frames 16–19 of the validation snippet, linked:
  the 30-frame clip through four rows is about half an hour on 2 cores; a stream's memory is
  reached at its first frames), with one warm-up frame; the rows' predictions (every offset's of
  the keyframe row) are label maps written directly, as `etc infer` writes them, and evaluated
  by `etc evaluate` (not measured); ``keyframe-score`` measures the keyframe row's;
  ``demo-video`` shows the baseline's labels as both panels;
- ``infer-teacher`` runs the teacher's ``infer`` with the preset's flip over the 4-frame clip at
  TEACHER_INFER_BATCH frame a batch (both ways: 2 forward passes at 1024×2048), the declared
  figure computed at the same batch (the preset's 4 frames declare about 36 GB on CPU, beyond this
  24 GB machine; memory is linear in the batch);
- not run: ``bench`` (etc bench times inference at 512×1024 and 1024×2048 with 11 repeats,
  exports and a compiled pipeline: far more than a few minutes on 2 shared cores).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python benchmarks/peak_rss.py` from a checkout imports its etc

LABEL_IDS = np.array([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33], np.uint8)
ANNOTATED = 19
STUDENT = "pspnet18"
STAGES = ["check-data", "flow-training", "flow-consecutive", "train-teacher", "train-baseline", "train-tl",
          "train-tl_kd", "infer", "infer-teacher", "evaluate", "evaluate-workers", "keyframe-infer", "latency", "keyframe-score",
          "demo-video", "report"]
# the stages of the streamed comparison and the report: they need the teacher's and the baseline's
# checkpoints (train-teacher, train-baseline) and the validation flow (flow-consecutive) first
ROW_STAGES = {"latency", "keyframe-score", "demo-video", "report"}
SHORT_STAGES = ROW_STAGES | {"infer-teacher"}  # the stages that read the 4-frame clip (make_short_tree)
TEACHER_INFER_BATCH = 1  # infer-teacher: frames per batch (both ways with flip; the preset's 4 need ~36 GB)
LATENCY_FRAMES = (16, 19)  # the short validation clip etc latency streams: frames 16 … 19, 19 labelled
ROWS_INTERVAL, ROWS_STRENGTH = 10, 0.3
EVAL_CLIPS, EVAL_WORKERS = 8, 2  # evaluate-workers: 4 clips a shard, one shard a worker


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_tree(root: Path, h: int, w: int, seed: int = 0) -> None:
    """One 30-frame snippet per split (train: aachen, val: lindau): smooth colour fields drifting
    8 px a frame (they compress and decode like photographs, not like noise) and label regions."""
    import cv2

    rng = np.random.default_rng(seed)
    for split, city in (("train", "aachen"), ("val", "lindau")):
        images = root / "leftImg8bit_sequence" / split / city
        labels = root / "gtFine" / split / city
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        wide = w + 8 * 30
        field = np.stack([cv2.resize(rng.random((12, 24)).astype(np.float32), (wide, h)) for _ in range(3)], -1)
        field = (field * 255).astype(np.uint8)
        for t, n in enumerate(range(ANNOTATED - 19, ANNOTATED + 11)):
            cv2.imwrite(str(images / f"{city}_000000_{n:06d}_leftImg8bit.png"), field[:, 8 * t: 8 * t + w])
        regions = cv2.resize(rng.integers(0, len(LABEL_IDS), (16, 32)).astype(np.uint8), (w, h),
                             interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(labels / f"{city}_000000_{ANNOTATED:06d}_gtFine_labelIds.png"), LABEL_IDS[regions])


def make_eval_tree(root: Path, clips: int, h: int, w: int, seed: int = 1) -> tuple[Path, Path]:
    """``clips`` validation snippets of 30 frames for evaluation with workers: their label maps,
    predictions (drifting regions) and a half-size DIS-tagged consecutive flow store, as
    benchmarks/bench_evaluate.py writes them (evaluate lists the frames, never decodes them)."""
    import cv2
    import h5py
    from bench_evaluate import label_maps, smooth

    from etc.flow.store import StoreWriter

    rng = np.random.default_rng(seed)
    sh, sw = h // 2, w // 2
    writer = StoreWriter(root / "flow.h5", {"estimator": "dis", "ckpt_sha256": "", "dataset": "cityscapes", "split": "val",
                                           "pairs": "consecutive", "image_size": [h, w], "stored_size": [sh, sw],
                                           "scale": 0.5, "dtype": "float16", "units": "pixels at stored_size"})
    images, labels = root / "leftImg8bit_sequence" / "val" / "lindau", root / "gtFine" / "val" / "lindau"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "predictions.h5", "w") as h5:
        for s in range(clips):
            name = f"lindau_{s:06d}_{ANNOTATED:06d}"
            h5.create_dataset(name, data=label_maps(rng, 30, h, w), chunks=(1, h, w), compression="lzf")
            for n in range(ANNOTATED - 19, ANNOTATED + 11):
                (images / f"lindau_{s:06d}_{n:06d}_leftImg8bit.png").touch()
            cv2.imwrite(str(labels / f"{name}_gtFine_labelIds.png"), LABEL_IDS[label_maps(rng, 1, h, w)[0]])
            for t in range(29):
                fw = np.stack([smooth(rng, (sh, sw), (6, 12), 6.0), smooth(rng, (sh, sw), (6, 12), 3.0)]).astype(np.float16)
                occ = (smooth(rng, (sh, sw), (24, 48), 1.0) > 1.6).astype(np.uint8)
                writer.write(name, t, t + 1, fw, -fw, occ, occ)
    writer.finish()
    return root / "predictions.h5", root / "flow.h5"


def resolved_config(preset: Path, root: Path, results: Path, iterations: int, train_batch: int | None) -> dict:
    from etc.core.config import load_config

    schedule = {"iterations": iterations, "checkpoint_every": iterations}
    if train_batch:
        schedule["batch_size"] = train_batch
    base = load_config(preset)
    overrides = {
        "dataset": {"root": str(root)},
        "resources": {"device": "cpu"},
        "flow": {"estimator": "dis", "ckpt": None},
        "teacher": {"pretrained": None},
        "students": {name: {"pretrained": None} for name in base["students"]},
        "train": {"teacher": schedule, "student": schedule},
        "ablations": {k: v for k, v in base["ablations"].items() if k in ("baseline", "tl", "tl_kd")},
        "keyframe": {"intervals": [max(base["keyframe"]["intervals"])],
                     "propagate": ["scores"], "estimator": "dis"},
        "evaluate": {"num_workers": 0},  # one validation clip: one shard, no worker to start
        "results": str(results),
    }
    return load_config(preset, overrides)


def declared(config: dict) -> dict[str, int]:
    from etc.plan import resources as res

    def train_student(ablation):
        return res.train_mem_mb(config, "student", ablation, STUDENT)

    return {"check-data": res.data_mem_mb(config), "flow-training": res.flow_mem_mb(config),
            "flow-consecutive": res.flow_mem_mb(config), "train-teacher": res.train_mem_mb(config, "teacher"),
            "train-baseline": train_student("baseline"), "train-tl": train_student("tl"),
            "train-tl_kd": train_student("tl_kd"),
            "infer": res.infer_mem_mb(config, f"{STUDENT}/baseline"),
            "infer-teacher": res.infer_mem_mb(teacher_infer_config(config), "teacher"), "evaluate": res.evaluate_mem_mb(config),
            "evaluate-workers": res.evaluate_mem_mb(_with_workers(config)),
            "keyframe-infer": res.infer_mem_mb(config, config["keyframe"]["model"], stream=True),
            "latency": res.latency_mem_mb(rows_config(config)), "keyframe-score": res.score_mem_mb(config),
            "demo-video": res.demo_mem_mb(config), "report": res.report_mem_mb(config)}


def _with_workers(config: dict) -> dict:
    from etc.core.config import deep_merge

    return deep_merge(config, {"dataset": {"root": str(Path(config["results"]).parent / "evaltree")},
                               "evaluate": {"num_workers": EVAL_WORKERS}})


def rows_config(config: dict, root: Path | None = None) -> dict:
    """The comparison the row stages run: the teacher and the baseline student per frame, the
    keyframe model at one interval with score propagation and the baseline fused at one strength
    (one row of each kind; the preset's 17 rows would stream for hours on 2 cores); ``root``: on
    the short clip (etc latency)."""
    import copy

    rows = copy.deepcopy(config)
    rows["ablations"] = {"baseline": config["ablations"]["baseline"]}
    rows["keyframe"].update({"intervals": [ROWS_INTERVAL], "propagate": ["scores"],
                             "fusion_runs": [f"{STUDENT}/baseline"], "fusion_strengths": [ROWS_STRENGTH],
                             "latency_frames": 1})
    rows["infer"]["warmup"] = 1
    if root is not None:
        rows["dataset"]["root"] = str(root)
    return rows


def teacher_infer_config(config: dict, root: Path | None = None) -> dict:
    """The preset's inference of the teacher, flip as the preset says, at TEACHER_INFER_BATCH
    frames a batch (memory is linear in it: the declared figure is computed at the same batch);
    ``root``: on the 4-frame clip."""
    from etc.core.config import deep_merge

    return deep_merge(config, {"infer": {"batch_size": TEACHER_INFER_BATCH},
                               **({"dataset": {"root": str(root)}} if root is not None else {})})


def make_short_tree(root: Path, short: Path) -> None:
    """The validation clip's frames LATENCY_FRAMES and its label, linked: a clip of 4 frames."""
    images, labels = short / "leftImg8bit_sequence" / "val" / "lindau", short / "gtFine" / "val" / "lindau"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    src = root / "leftImg8bit_sequence" / "val" / "lindau"
    for n in range(LATENCY_FRAMES[0], LATENCY_FRAMES[1] + 1):
        name = f"lindau_000000_{n:06d}_leftImg8bit.png"
        if not (images / name).exists():
            (images / name).symlink_to(src / name)
    label = f"lindau_000000_{ANNOTATED:06d}_gtFine_labelIds.png"
    if not (labels / label).exists():
        (labels / label).symlink_to(root / "gtFine" / "val" / "lindau" / label)


def row_files(rows: dict, out: Path) -> dict[str, dict]:
    """Per row slug of ``rows``: its predictions files, metrics and row JSON, as the rules name them."""
    from etc.plan.keyframe_rows import keyframe_rows

    files = {}
    for r in keyframe_rows(rows):
        if r["kind"] == "per-frame":
            preds, metrics = [out / "predictions" / f"{r['model']}.h5"], out / "metrics" / f"{r['model']}.json"
        else:
            preds = [out / "keyframe" / "predictions" / f"{r['slug']}.{'all' if d is None else f'd{d}'}.h5"
                     for d in r["offsets"]]
            metrics = out / "keyframe" / "evaluate" / f"{r['slug']}.json"
        files[r["slug"]] = {"row": r, "predictions": preds, "metrics": metrics,
                            "out": out / "keyframe" / "rows" / f"{r['slug']}.json"}
    return files


def prepare_rows(rows: dict, cfg: Path, out: Path, h: int, w: int) -> None:
    """The inputs of keyframe-score, demo-video and report, not measured: every row's predictions
    of the validation clip (drifting label regions written directly, as `etc infer` writes them:
    a full-resolution inference of them all is hours on 2 cores), `etc evaluate` of the teacher's
    and the baseline's, and `etc keyframe-score` of every row but the measured one."""
    import h5py
    from bench_evaluate import label_maps

    from etc.infer.predict import PREDICTIONS_FORMAT

    files = row_files(rows, out)
    rng = np.random.default_rng(2)
    flow_v = out / "flow/consecutive/val.dis.h5"
    for slug, f in files.items():
        for d, p in zip(f["row"]["offsets"], f["predictions"], strict=True):
            if p.exists():
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(p, "w") as h5:
                h5.attrs.update({"format": PREDICTIONS_FORMAT, "checkpoint": str(out / "models" / f"{f['row']['model']}.pt"),
                                 "split": "val", "flip": False, "dataset": rows["dataset"]["name"]})
                if f["row"]["kind"] == "keyframe":
                    h5.attrs.update({"keyframe_interval": f["row"]["interval"], "propagate": f["row"]["propagate"],
                                     "keyframe_estimator": f["row"]["estimator"], "keyframe_offset": d})
                elif f["row"]["kind"] == "fusion":
                    h5.attrs.update({"temporal_fusion": f["row"]["fusion"],
                                     "temporal_fusion_estimator": f["row"]["estimator"]})
                dset = h5.create_dataset(f"lindau_000000_{ANNOTATED:06d}", data=label_maps(rng, 30, h, w),
                                         chunks=(1, h, w), compression="lzf")
                dset.attrs["frame_numbers"] = list(range(ANNOTATED - 19, ANNOTATED + 11))
                dset.attrs["labelled"] = [19]
        r = f["row"]
        if r["kind"] == "per-frame":
            say(f"preparing: etc evaluate {r['model']}")
            run_quiet(["evaluate", "--config", str(cfg), "--predictions", str(f["predictions"][0]), "--flow",
                       str(flow_v), "--model", str(out / "models" / f"{r['model']}.pt"), "--out", str(f["metrics"])],
                      out / "logs" / f"prepare-evaluate-{slug.replace('/', '_')}.log")
    for f in files.values():  # a keyframe or fused row's metrics: its model's (the same synthetic labels)
        if f["row"]["kind"] != "per-frame":
            f["metrics"].parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(out / "metrics" / f"{f['row']['model']}.json", f["metrics"])


def score_argv(cfg: Path, f: dict) -> list[str]:
    r = f["row"]
    return ["keyframe-score", "--config", str(cfg), *[a for p in f["predictions"] for a in ("--predictions", str(p))],
            "--interval", str(r["interval"]), "--metrics", str(f["metrics"]), "--run", r["run"], "--out", str(f["out"])]


def run_quiet(argv: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.call([sys.executable, "-m", "etc", *argv], stdout=fh, stderr=subprocess.STDOUT,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    if rc != 0:
        say(f"etc {argv[0]} failed (exit {rc}); its log {log}:\n{log.read_text()[-3000:]}")
        raise SystemExit(1)


def measured_row(rows: dict) -> str:
    """The keyframe-score job measured: the keyframe setting's (its K offsets' predictions)."""
    return next(slug for slug, f in row_files(rows, Path(".")).items() if f["row"]["kind"] == "keyframe")


def commands(config: dict, cfg: Path, out: Path) -> dict[str, tuple[str, list[str]]]:
    """(threads stage, argv after `etc`) of each stage, as the rules write them."""
    c = str(cfg)
    flow_t, flow_v = str(out / "flow/training/train.dis.h5"), str(out / "flow/consecutive/val.dis.h5")
    teacher, base = str(out / "models/teacher.pt"), str(out / f"models/{STUDENT}/baseline.pt")
    pred, timing = str(out / f"predictions/{STUDENT}/baseline.h5"), str(out / f"timing/{STUDENT}/baseline.json")
    keyframe_model = teacher if config["keyframe"]["model"] == "teacher" else str(out / f"models/{config['keyframe']['model']}.pt")

    def student(ablation, *flags):
        return ("train", ["train", "--config", c, "--run", f"{STUDENT}/{ablation}", "--out",
                          str(out / f"models/{STUDENT}/{ablation}.pt"), "--log-csv",
                          str(out / f"train/{STUDENT}/{ablation}.csv"), *flags])

    return {
        "check-data": (None, ["check-data", "--config", c, "--manifest", str(out / "data/manifest.json")]),
        "flow-training": ("flow", ["precompute-flow", "--config", c, "--split", "train", "--pairs", "training",
                                   "--estimator", "dis", "--out", flow_t]),
        "flow-consecutive": ("flow", ["precompute-flow", "--config", c, "--split", "val", "--pairs", "consecutive",
                                      "--estimator", "dis", "--out", flow_v]),
        "train-teacher": ("train", ["train", "--config", c, "--run", "teacher", "--out", teacher, "--log-csv",
                                    str(out / "train/teacher.csv")]),
        "train-baseline": student("baseline"),
        "train-tl": student("tl", "--flow", flow_t),
        "train-tl_kd": student("tl_kd", "--flow", flow_t, "--teacher", teacher),
        "infer": ("infer", ["infer", "--config", c, "--model", base, "--split", "val", "--out", pred,
                            "--timing", timing]),
        "infer-teacher": ("infer", ["infer", "--config", str(out / "config.infer-teacher.yaml"), "--model", teacher,
                                    "--split", "val", "--out", str(out / "predictions/teacher.h5"), "--timing",
                                    str(out / "timing/teacher.json")]),
        "evaluate": ("evaluate", ["evaluate", "--config", c, "--predictions", pred, "--flow", flow_v, "--model", base,
                                  "--timing", timing, "--out", str(out / f"metrics/{STUDENT}/baseline.json")]),
        "evaluate-workers": ("evaluate", ["evaluate", "--config", str(out / "config.workers.yaml"), "--predictions",
                                          str(out.parent / "evaltree/predictions.h5"), "--flow",
                                          str(out.parent / "evaltree/flow.h5"), "--model", base, "--timing", timing,
                                          "--out", str(out / "metrics/workers.json")]),
        "keyframe-infer": ("timed", ["infer", "--config", c, "--model", keyframe_model, "--split", "val", "--no-flip",
                                     "--keyframe-interval", str(config["keyframe"]["intervals"][0]), "--propagate", "scores", "--keyframe-flow", "dis",
                                     "--out", str(out / "keyframe/k2.h5"), "--timing", str(out / "keyframe/k2.json")]),
        **row_commands(config, out),
    }


def row_commands(config: dict, out: Path) -> dict[str, tuple[str | None, list[str]]]:
    rows, c = rows_config(config), str(out / "config.rows.yaml")
    files = row_files(rows, out)
    scored = files[measured_row(rows)]
    demo = ",".join(f"{name}={out / 'predictions' / STUDENT / 'baseline.h5'}" for name in ("baseline", "etc"))
    return {
        "latency": ("timed", ["latency", "--config", str(out / "config.latency.yaml"), "--models", str(out / "models"),
                              "--split", "val", "--out", str(out / "keyframe/latency.json")]),
        "keyframe-score": (None, score_argv(Path(c), scored)),
        "demo-video": ("report", ["demo-video", "--config", c, "--clip-index", "0", "--models", demo, "--flow",
                                  str(out / "flow/consecutive/val.dis.h5"), "--out", str(out / "demo/clip0.mp4"),
                                  "--gif", str(out / "demo/clip0.gif")]),
        "report": ("report", ["report", "--config", c, "--metrics-dir", str(out / "metrics"), "--curves-dir",
                              str(out / "train"), "--table", str(out / "table.csv"), "--out-dir",
                              str(out / "figures"), "--keyframe-dir", str(out / "keyframe/rows"), "--latency",
                              str(out / "keyframe/latency.json")]),
    }


def tree_rss(proc) -> int:
    """Bytes of RSS of ``proc`` and every descendant (0 once it is gone)."""
    import psutil

    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in members:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(argv: list[str], threads: int, log: Path) -> tuple[float, float, int]:
    """(peak MB, seconds, exit code) of ``python -m etc ARGV``."""
    import psutil

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        child = subprocess.Popen([sys.executable, "-m", "etc", *argv], stdout=fh, stderr=subprocess.STDOUT, env=env)
    proc = psutil.Process(child.pid)
    peak, hwm = [0], [0]
    done = threading.Event()
    status = Path(f"/proc/{child.pid}/status")

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc))
            try:  # the process's own high-water mark since its exec: a peak between two polls
                line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
                hwm[0] = max(hwm[0], int(line.split()[1]) * 1024)
            except (OSError, StopIteration):
                pass
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    child.wait()
    done.set()
    poller.join()
    return max(peak[0], hwm[0]) / 2**20, time.perf_counter() - t0, child.returncode


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--preset", default=str(REPO / "workflow/configs/cityscapes.yaml"), show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--size", default=None, help="HxW of the generated frames; default: the preset dataset's frame size")
@click.option("--iterations", default=1, show_default=True, help="Training iterations of each run")
@click.option("--train-batch", default=2, show_default=True,
              help="train.teacher/student.batch_size (0: the preset's); the declared figure uses the same")
@click.option("--stages", default=",".join(STAGES), show_default=True, help="Comma-separated subset, in order")
@click.option("--work", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the tree and the outputs (default: a temporary one, removed)")
@click.option("--recheck", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A --csv of an earlier run: print its measured figures beside today's declared ones "
                   "(after a change of etc/plan/resources.py), running nothing")
@click.option("--keep", is_flag=True, help="Keep the outputs of an earlier run in --work (the checkpoints a later "
                                             "--stages needs); a stage's own output is written again")
@click.option("--csv", "csv_out", default=None, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--markdown", default=None, type=click.Path(dir_okay=False, path_type=Path))
def main(preset, size, iterations, train_batch, stages, work, recheck, keep, csv_out, markdown):
    from etc.core.config import write_resolved
    from etc.plan.resources import frame_size

    started = time.perf_counter()
    tmp = None if work else tempfile.mkdtemp(prefix="peak_rss_")
    work = Path(work or tmp)
    try:
        root, out = work / "cityscapes", work / "results"
        config = resolved_config(preset, root, out, iterations, train_batch or None)
        h, w = (int(v) for v in size.lower().split("x")) if size else frame_size(config)
        if not (root / "gtFine").exists() and not recheck:
            say(f"writing a {h}x{w} Cityscapes tree (1 train + 1 val snippet of 30 frames) in {root}")
            make_tree(root, h, w)
        if not recheck and not keep:
            shutil.rmtree(out, ignore_errors=True)  # every job runs afresh (a finished output is skipped)
        cfg = out / "config.yaml"
        write_resolved(config, cfg)
        if "evaluate-workers" in stages.split(",") and not recheck:
            if not (work / "evaltree" / "flow.h5").exists():
                say(f"writing {EVAL_CLIPS} validation snippets' labels, predictions and flow in {work / 'evaltree'}")
                make_eval_tree(work / "evaltree", EVAL_CLIPS, h, w)
            write_resolved(_with_workers(config), out / "config.workers.yaml")
        wanted = stages.split(",")
        if SHORT_STAGES & set(wanted) and not recheck:
            make_short_tree(root, work / "shorttree")
            write_resolved(teacher_infer_config(config, work / "shorttree"), out / "config.infer-teacher.yaml")
            write_resolved(rows_config(config), out / "config.rows.yaml")
            write_resolved(rows_config(config, work / "shorttree"), out / "config.latency.yaml")
        budget, steps = declared(config), commands(config, cfg, out)
        rows = []
        if recheck:
            with open(recheck, newline="") as fh:
                for r in csv.DictReader(fh):
                    peak, mem = float(r["measured_mb"]), budget[r["job"]]
                    rows.append({**r, "measured_mb": round(peak), "declared_mb": mem, "ratio": round(mem / peak, 2),
                                 "check": "OK" if peak <= mem <= 2 * peak else "FAIL"})
        for stage in [] if recheck else stages.split(","):
            threads_stage, argv = steps[stage]
            if stage in ROW_STAGES - {"latency"} and not (out / "logs/rows-prepared").exists():
                compared = rows_config(config)
                prepare_rows(compared, out / "config.rows.yaml", out, h, w)
                if stage == "report" or "report" in wanted:
                    skip = measured_row(compared) if "keyframe-score" in wanted else None
                    for slug, f in row_files(compared, out).items():
                        if slug != skip:
                            say(f"preparing: etc keyframe-score {slug}")
                            run_quiet(score_argv(out / "config.rows.yaml", f),
                                      out / "logs" / f"prepare-score-{slug.replace('/', '_')}.log")
                (out / "logs/rows-prepared").parent.mkdir(parents=True, exist_ok=True)
                (out / "logs/rows-prepared").touch()
            threads = int(config["resources"]["threads"][threads_stage]) if threads_stage else 1  # rule without threads: 1
            log = out / "logs" / f"{stage}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            say(f"{stage}: etc {' '.join(argv[:1])} with {threads} threads …")
            peak, seconds, rc = measure(argv, threads, log)
            if rc != 0:
                say(f"{stage} failed (exit {rc}); its log {log}:\n{log.read_text()[-3000:]}")
                raise SystemExit(1)
            mem = budget[stage]
            ok = peak <= mem <= 2 * peak
            rows.append({"job": stage, "measured_mb": round(peak), "declared_mb": mem, "ratio": round(mem / peak, 2),
                         "check": "OK" if ok else "FAIL", "seconds": round(seconds, 1)})
            say(f"{stage}: peak {peak:.0f} MB, declared {mem} MB, ratio {mem / peak:.2f} "
                f"{'OK' if ok else 'FAIL'} ({seconds:.0f} s)")
        header = ["job", "measured_mb", "declared_mb", "ratio", "check", "seconds"]
        table = ["| job | measured peak MB | declared mem_mb | declared / measured | check | s |",
                 "|---|---|---|---|---|---|"]
        table += [f"| {r['job']} | {r['measured_mb']} | {r['declared_mb']} | {r['ratio']:.2f} | {r['check']} | "
                  f"{float(r['seconds']):.0f} |" for r in rows]
        print("\n".join(table))
        print(f"frames {h}x{w}, train batch {config['train']['teacher']['batch_size']}, crop "
              f"{config['augment']['crop']}, infer batch {config['infer']['batch_size']} (flip "
              f"{config['infer']['flip']}), threads {config['resources']['threads']}; "
              f"{time.perf_counter() - started:.0f} s in all")
        if csv_out:
            with open(csv_out, "w", newline="") as fh:
                writer = csv.DictWriter(fh, header)
                writer.writeheader()
                writer.writerows(rows)
        if markdown:
            Path(markdown).write_text("\n".join(table) + "\n")
        if any(r["check"] == "FAIL" for r in rows):
            raise SystemExit(1)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
