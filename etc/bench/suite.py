"""``etc bench``: measured ratios, each taken within one run (these machines are noisy).

1. inference parity — student vs teacher forward, timed in turns, ms/frame at the requested
   resolutions;
2. pipeline efficiency — `etc infer` frames/s over the bare network's forward frames/s;
3. training overhead — step time of `tl` and `tl_kd` over `baseline`, and the reference
   approach (flow computed by a ptlflow model inside every step) over ours;
4. flow stage — `precompute-flow` pairs/s over the bare estimator's pairs/s; MB per pair;
5. memory — peak RSS of a training and an inference run (subprocesses);
6. per rule — Snakemake's benchmark TSVs of the last run, gathered;
7. keyframe — per-frame teacher and student against keyframe methods (etc.infer.keyframe), streamed
   in turns through the same frames (etc.bench.latency): mean, p95, worst ms per frame and ratios.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from etc.bench.timing import Rows, interleaved_ms, median_time
from etc.core.device import sync

log = logging.getLogger(__name__)


def bench_inference_parity(rows: Rows, config: dict, sizes, device, repeats: int) -> None:
    """The student's and the teacher's forward at each size, timed in turns: the speed ratio
    the distillation buys. (Two students of one architecture time alike by construction; the
    comparison that matters, per-frame against keyframe methods, is :func:`bench_keyframe`.)"""
    from etc.models import build_model

    _, spec = next(iter(config["students"].items()))
    torch.manual_seed(0)
    student = build_model(spec, 19).to(device).eval()
    teacher = build_model(config["teacher"], 19).to(device).eval()
    for h, w in sizes:
        ms = interleaved_ms({"student": student, "teacher": teacher}, h, w, device, repeats)
        tag = f"{h}x{w}"
        rows.add("inference_parity", f"student_ms_{tag}", ms["student"], "ms/frame")
        rows.add("inference_parity", f"teacher_ms_{tag}", ms["teacher"], "ms/frame")
        rows.add("inference_parity", f"student_over_teacher_{tag}", ms["student"] / ms["teacher"], "ratio")


def bench_inference_options(rows: Rows, config: dict, device, repeats: int, size=(512, 1024),
                            heavy: bool = True) -> None:
    """Images → labels (forward + argmax) of the student under each execution option (the
    fused labels of etc.infer.upsample_argmax among them), against the plain fp32 NCHW eager forward.
    ``heavy`` adds the options that cost seconds to prepare: torch.compile and ONNX Runtime
    (the latter only where the `onnx` extra is installed)."""
    from etc.infer.predict import make_predictor
    from etc.models import build_model

    _, spec = next(iter(config["students"].items()))
    model = build_model(spec, 19).to(device).eval()
    h, w = size
    x = torch.randn(1, 3, h, w, device=device)
    xc = x.contiguous(memory_format=torch.channels_last)

    def timed(fn, inp) -> float:
        def run():
            fn(inp)
            sync(device)
        return 1000.0 * median_time(run, repeats)

    plain = timed(make_predictor(model), x)
    model.to(memory_format=torch.channels_last)
    ms = {"channels_last": timed(make_predictor(model), xc),
          "channels_last_bf16": timed(make_predictor(model, bf16=True), xc),
          "channels_last_fused_labels": timed(make_predictor(model, fused=True), xc)}
    if heavy:
        ms["channels_last_compiled"] = timed(make_predictor(model, compile=True), xc)
        ort = _onnxruntime_labels(model.to(memory_format=torch.contiguous_format), x, device)
        if ort is not None:
            ms["onnxruntime"] = timed(ort, x)
    tag = f"{h}x{w}"
    rows.add("inference_options", f"plain_ms_{tag}", plain, "ms/frame")
    for name, v in ms.items():
        rows.add("inference_options", f"{name}_over_plain_{tag}", v / plain, "ratio")


def _onnxruntime_labels(model, example: torch.Tensor, device):
    """The student + argmax exported to ONNX (dynamo exporter: the TorchScript one rejects
    adaptive pooling whose bins do not divide the feature map) and run by ONNX Runtime."""
    if device.type != "cpu":
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        log.warning("onnxruntime not installed (pip install -e '.[onnx]'); ONNX bench skipped")
        return None

    class Labels(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)["logits"].argmax(1)

    with tempfile.TemporaryDirectory(prefix="etc-onnx-") as d:
        path = Path(d) / "student.onnx"
        try:
            torch.onnx.export(Labels(model).eval(), (example,), str(path), input_names=["images"],
                              output_names=["labels"], dynamo=True, verbose=False)
        except Exception as exc:  # an optional measurement; the bench goes on without it
            log.warning("ONNX export failed: %s", exc)
            return None
        so = ort.SessionOptions()
        so.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda images: sess.run(None, {"images": images.numpy()})[0]


def _tiny_setup(tmp: Path, config: dict, quick: bool) -> dict:
    """A small synthetic set + flow stores + configs for the pipeline and training benches."""
    from etc.core.config import load_config
    from etc.data.synthetic import make_synthetic
    from etc.flow.precompute import precompute_flow

    h, w = (64, 128) if quick else (96, 192)
    root = tmp / "data"
    make_synthetic(root, train_clips=4, val_clips=8, frames=8, height=h, width=w, seed=0)
    cfg = load_config(None, {
        **{k: config[k] for k in ("teacher", "students", "losses", "augment")},
        "dataset": {"name": "synthetic", "root": str(root), "window": [-1, 1, 2]},
        "flow": {"estimator": "gt"},  # the stores below; `etc train` checks the store against it
        "ablations": {"baseline": {"ce": 1.0}, "tl": {"ce": 1.0, "tl": 1.0},
                      "tl_kd": {"ce": 1.0, "tl": 1.0, "pi": 1.0, "pf": 1.0, "mf": 1.0}},
        "train": {"teacher": {"iterations": 2, "batch_size": 4}, "student": {"iterations": 2, "batch_size": 4}},
        "infer": {"batch_size": 4, "warmup": 1},
    })
    precompute_flow(cfg, "train", tmp / "train.h5", estimator="gt", progress=False)
    precompute_flow(cfg, "val", tmp / "val.h5", estimator="gt", progress=False)
    return cfg


def bench_pipeline(rows: Rows, cfg: dict, tmp: Path, device, big: tuple[int, int], compile: bool) -> None:
    """`etc infer` end to end (decode → network → argmax → HDF5) against the bare forward.

    Measured on the tiny set and on a few frames at ``big`` (a real frame size, where the
    network's share is representative). Each infer call is preceded by an untimed one, so
    one-off costs (imports, first-touch allocations, compilation) are left out; the bare
    forward uses the same batch size and memory layout as infer.
    """
    from etc.core.config import load_config
    from etc.core.execution import resolve_execution
    from etc.data.clips import list_clips, read_image
    from etc.data.synthetic import make_synthetic
    from etc.infer.predict import infer
    from etc.models.checkpoint import load_model_from_checkpoint
    from etc.train.loop import train

    ckpt = tmp / "student.pt"
    train(cfg, f"{next(iter(cfg['students']))}/baseline", ckpt, progress=False, device=str(device))
    model, _ = load_model_from_checkpoint(ckpt)
    model.to(device).eval()
    ex = resolve_execution(cfg["infer"], device, "infer")
    layout = ex.memory_format
    model.to(memory_format=layout)
    h, w = big
    root = tmp / "big"
    # enough frames that the per-call fixed costs (checkpoint, model, file) weigh what they
    # would on a real split: little
    make_synthetic(root, train_clips=1, val_clips=3, frames=8, height=h, width=w, seed=0)
    variants = [("", cfg)]
    variants.append((f"_{h}x{w}", load_config(None, {**cfg, "dataset": {**cfg["dataset"], "root": str(root)}})))
    if compile:
        c = variants[-1][1]
        variants.append((f"_{h}x{w}_compiled", load_config(None, {**c, "infer": {**c["infer"], "compile": True}})))
    bare_fps: dict = {}  # frame size → bare forward frames/s (the compiled variant shares it)
    for tag, c in variants:
        clips = list_clips("synthetic", c["dataset"]["root"], "val")
        frames = sum(len(clip) for clip in clips)
        infer(c, ckpt, "val", tmp / "pred.h5", progress=False, device=str(device))  # untimed warm-up
        t0 = time.perf_counter()
        info = infer(c, ckpt, "val", tmp / "pred.h5", progress=False, device=str(device))
        full = frames / (time.perf_counter() - t0)
        size = cfg_size(c)
        if size not in bare_fps:
            bs = int(c["infer"]["batch_size"])
            x = torch.randn(bs, 3, *size, device=device).contiguous(memory_format=layout)

            def fwd(x=x):
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=ex.bf16):
                    model(x)["logits"]
                sync(device)

            bare_fps[size] = bs / median_time(fwd, 5)
        bare = bare_fps[size]
        t0 = time.perf_counter()
        for clip in clips:
            for f in clip.frames:
                read_image(f.image)
        decode_ms = 1000.0 * (time.perf_counter() - t0) / frames
        # throughput of batched runs (the results table's speed is the streamed latency instead)
        throughput = f"frames/s, throughput at batch {int(c['infer']['batch_size'])}"
        rows.add("pipeline", f"infer_frames_per_s{tag}", full, throughput)
        rows.add("pipeline", f"bare_forward_frames_per_s{tag}", bare, throughput)
        rows.add("pipeline", f"predict_ms_per_frame{tag}", info["median_ms_per_frame"], "ms/frame")
        rows.add("pipeline", f"png_decode_ms_per_frame{tag}", decode_ms, "ms/frame")
        rows.add("pipeline", f"infer_over_bare{tag}", full / bare, "ratio")
        # the stream once the model is ready (what a long split sees: the call's fixed costs,
        # loading the checkpoint and opening the file, still weigh on these 24 frames)
        rows.add("pipeline", f"infer_stream_over_bare{tag}", info["pipeline_fps"] / bare, "ratio")


def bench_keyframe(rows: Rows, cfg: dict, tmp: Path, device, quick: bool, interval: int = 5) -> None:
    """Per-frame networks against keyframe methods, streamed in turns through the same frames
    by `etc latency` (etc.bench.latency: batch 1, the device synchronised around each frame, flow
    estimation included): mean, p95 and worst-case ms per frame, and their ratios to the
    per-frame teacher."""
    from etc.bench.latency import stream_latency
    from etc.infer.keyframe import KeyframeOptions
    from etc.train.loop import train

    ckpts = {"teacher": tmp / "kf_teacher.pt", "student": tmp / "kf_student.pt"}
    train(cfg, "teacher", ckpts["teacher"], progress=False, device=str(device))
    train(cfg, f"{next(iter(cfg['students']))}/baseline", ckpts["student"], progress=False, device=str(device))
    runs = {"teacher": (ckpts["teacher"], None), "student": (ckpts["student"], None)}
    for propagate in ("scores", "features"):
        runs[f"teacher_k{interval}_{propagate}_dis"] = (ckpts["teacher"], KeyframeOptions(interval, propagate, "dis"))
    stats = stream_latency(cfg, runs, "val", tmp / "latency.json", device=str(device), progress=False)["runs"]
    for name, st in stats.items():
        for key in ("mean", "p95", "max"):
            rows.add("keyframe", f"{name}_ms_{key}", st[f"ms_per_frame_{key}"], "ms/frame")
    teacher = stats["teacher"]
    for name, st in stats.items():
        if name.startswith("teacher_k"):
            rows.add("keyframe", f"{name}_mean_over_teacher", st["ms_per_frame_mean"] / teacher["ms_per_frame_mean"], "ratio")
            rows.add("keyframe", f"{name}_max_over_mean", st["ms_per_frame_max"] / st["ms_per_frame_mean"], "ratio")
            rows.add("keyframe", f"student_over_{name}_mean",
                     stats["student"]["ms_per_frame_mean"] / st["ms_per_frame_mean"], "ratio")
    rows.add("keyframe", "teacher_max_over_mean", teacher["ms_per_frame_max"] / teacher["ms_per_frame_mean"], "ratio")


def cfg_size(cfg: dict) -> tuple[int, int]:
    from etc.data.clips import list_clips, read_image

    clip = list_clips(cfg["dataset"]["name"], cfg["dataset"]["root"], "val")[0]
    return read_image(clip.frames[0].image).shape[:2]


def bench_training(rows: Rows, cfg: dict, tmp: Path, device, quick: bool) -> None:
    """Seconds per step of each ablation, measured by running `train` for a few iterations."""
    import pandas as pd

    from etc.core.config import load_config
    from etc.train.loop import train

    student = next(iter(cfg["students"]))
    iters = 4 if quick else 10
    c = load_config(None, {**cfg, "train": {**cfg["train"], "student": {**cfg["train"]["student"], "iterations": iters, "checkpoint_every": 10**6},
                                             "teacher": {**cfg["train"]["teacher"], "iterations": 1}}})
    teacher = tmp / "teacher.pt"
    train(c, "teacher", teacher, progress=False, device=str(device))
    bs = int(c["train"]["student"]["batch_size"])

    def s_per_step(csv: Path) -> float:  # the first step pays for warm-up
        return float(bs / pd.read_csv(csv)["samples_per_s"].iloc[1:].median())

    step = {}
    for ab in ("baseline", "tl", "tl_kd"):
        csv = tmp / f"steps_{ab}.csv"
        train(c, f"{student}/{ab}", tmp / f"{ab}.pt", flow=tmp / "train.h5", teacher=teacher, log_csv=csv, progress=False, device=str(device))
        step[ab] = s_per_step(csv)
        rows.add("training", f"{ab}_s_per_step", step[ab], "s")
    c_sg = load_config(None, {**c, "losses": {**c["losses"], "neighbour_grad": False}})
    csv = tmp / "steps_tl_stopgrad.csv"
    train(c_sg, f"{student}/tl", tmp / "tl_sg.pt", flow=tmp / "train.h5", log_csv=csv, progress=False, device=str(device))
    step["tl_stopgrad"] = s_per_step(csv)
    rows.add("training", "tl_stopgrad_s_per_step", step["tl_stopgrad"], "s")
    rows.add("training", "tl_stopgrad_over_baseline", step["tl_stopgrad"] / step["baseline"], "ratio")
    rows.add("training", "tl_over_baseline", step["tl"] / step["baseline"], "ratio")
    rows.add("training", "tl_kd_over_baseline", step["tl_kd"] / step["baseline"], "ratio")
    # the reference approach: the flow network runs inside every step (random weights: speed only)
    est = _ptlflow_random("rapidflow_it1", device)
    if est is not None:
        h, w = cfg_size(c)
        imgs = torch.rand(bs, 2, 3, h + (-h) % 32, w + (-w) % 32, device=device)

        def flow_step():
            with torch.no_grad():
                est({"images": imgs})

        in_loop = median_time(flow_step, 2 if quick else 4)
        rows.add("training", "inloop_flow_s_per_step", in_loop, "s")
        rows.add("training", "reference_inloop_over_ours_tl", (step["tl"] + in_loop) / step["tl"], "ratio")


def _ptlflow_random(name: str, device):
    from etc.flow.estimators import build_ptlflow_model

    try:
        return build_ptlflow_model(name).to(device).eval()
    except Exception as exc:  # speed-only extra; the bench goes on without it
        log.warning("ptlflow model %s unavailable: %s", name, exc)
        return None


def bench_flow(rows: Rows, cfg: dict, tmp: Path, quick: bool) -> None:
    """The flow stage against bare DIS, by etc.bench.flow (which owns that measurement)."""
    from etc.bench.flow import bench_flow as flow_stage

    h, w = cfg_size(cfg)
    got = {r["metric"]: r["value"] for r in flow_stage(h, w, pairs=4 if quick else 8, estimators=("dis",), workdir=tmp)}
    rows.add("flow", "precompute_pairs_per_s", got["precompute_pairs_per_s_float16"], "pairs/s")
    rows.add("flow", "bare_dis_pairs_per_s", got["raw_pairs_per_s"], "pairs/s")
    rows.add("flow", "precompute_over_bare", got["precompute_over_raw_float16"], "ratio")
    for dtype in ("float32", "float16"):
        mb = next(v for k, v in got.items() if k.startswith(f"mb_per_pair_{dtype}_"))
        rows.add("flow", f"mb_per_pair_{dtype}_{h}x{w}", mb, "MB")


def bench_memory(rows: Rows, cfg: dict, tmp: Path, device) -> None:
    """Peak RSS of a training and an inference run, each in a fresh process."""
    import yaml

    cfg_path = tmp / "bench_config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    student = next(iter(cfg["students"]))
    jobs = {
        "train_tl_kd": ["train", "--config", str(cfg_path), "--run", f"{student}/tl_kd", "--flow", str(tmp / "train.h5"),
                        "--teacher", str(tmp / "teacher.pt"), "--out", str(tmp / "mem.pt"), "--device", str(device)],
        "infer": ["infer", "--config", str(cfg_path), "--model", str(tmp / "student.pt"), "--out", str(tmp / "mem.h5"),
                  "--device", str(device)],
    }
    # VmHWM of the child's own address space: ru_maxrss would carry over the parent's peak,
    # which Linux keeps across fork + exec.
    code = ("import runpy, sys; sys.argv = ['etc'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('etc', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]\n"
            "print('PEAK_KB', hwm, file=sys.stderr)\n"
            "import torch\n"
            "if torch.cuda.is_available() and torch.cuda.is_initialized():\n"
            "    print('PEAK_CUDA_B', torch.cuda.max_memory_allocated(), file=sys.stderr)")
    for name, args in jobs.items():
        res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        peak = [ln for ln in res.stderr.splitlines() if ln.startswith("PEAK_KB")]
        if peak:
            rows.add("memory", f"{name}_peak_rss", int(peak[-1].split()[1]) / 1024.0, "MB")
        cuda = [ln for ln in res.stderr.splitlines() if ln.startswith("PEAK_CUDA_B")]
        if cuda:
            rows.add("memory", f"{name}_peak_cuda", int(cuda[-1].split()[1]) / 2**20, "MB")


def bench_malloc(rows: Rows, config: dict, size: tuple[int, int], repeats: int) -> None:
    """Student forward with the `etc` allocator tuning (etc.core.malloc) against glibc's defaults,
    each in a fresh process (the setting is process-wide and sticky)."""
    import json
    import os

    h, w = size
    code = ("import json, sys, torch\n"
            "from etc.bench.timing import interleaved_ms\n"
            "from etc.core.malloc import keep_freed_memory\n"
            "from etc.models import build_model\n"
            "keep_freed_memory()\n"
            f"torch.set_num_threads({torch.get_num_threads()})\n"
            "m = build_model(json.loads(sys.argv[1]), 19).eval()\n"
            f"print(interleaved_ms({{'s': m}}, {h}, {w}, torch.device('cpu'), {repeats}, warmup=1)['s'])\n")
    spec = json.dumps(next(iter(config["students"].values())))
    ms = {}
    for tune in ("0", "1"):
        res = subprocess.run([sys.executable, "-c", code, spec], capture_output=True, text=True,
                             env={**os.environ, "ETC_MALLOC_TUNE": tune})
        if res.returncode != 0:
            log.warning("malloc bench failed: %s", res.stderr[-500:])
            return
        ms[tune] = float(res.stdout.split()[-1])
    tag = f"{h}x{w}"
    rows.add("memory", f"student_ms_glibc_default_{tag}", ms["0"], "ms/frame")
    rows.add("memory", f"student_ms_heap_kept_{tag}", ms["1"], "ms/frame")
    rows.add("memory", f"heap_kept_over_glibc_default_{tag}", ms["1"] / ms["0"], "ratio")


def bench_rules(rows: Rows, results_dir: Path, out_png: Path | None) -> None:
    import pandas as pd

    tsvs = sorted(Path(results_dir, "benchmarks").rglob("*.tsv"))
    if not tsvs:
        return
    recs = []
    for p in tsvs:
        d = pd.read_csv(p, sep="\t")
        name = str(p.relative_to(Path(results_dir, "benchmarks")).with_suffix(""))
        recs.append({"rule": name, "s": float(d["s"].iloc[-1]), "max_rss": float(d["max_rss"].iloc[-1]) if "max_rss" in d else float("nan")})
        rows.add("rules", f"{name}_s", recs[-1]["s"], "s")
    if out_png is not None:
        from etc.report.plots import save_figure as _save
        from etc.report.plots import styled_pyplot as _plt

        plt, sns = _plt()
        df = pd.DataFrame(recs).sort_values("s", ascending=False)
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(df) + 1))
        sns.barplot(data=df, y="rule", x="s", color="steelblue", ax=ax)
        ax.set_xlabel("wall time of the last run (s)")
        _save(fig, out_png)
        plt.close(fig)


def run_bench(config: dict, out_csv: str | Path, *, device: str = "cpu", quick: bool = False,
              results_dir: str | Path | None = None, scale: str = "small") -> tuple[list[dict], list[str]]:
    """Measure, write ``out_csv`` (+ a .md twin); returns (rows, summary lines to print).

    ``scale``: ``small`` — the default measurements (parity, options, pipeline, training,
    flow, memory) on small sets; ``paper`` — etc.bench.paper at 1024×2048 with the config's
    networks (pass the Cityscapes preset)."""
    from etc.core.device import checked_device
    from etc.core.io import output_folder
    from etc.infer.predict import device_name

    dev = checked_device(device)
    out_csv = Path(out_csv)
    for path in (out_csv, out_csv.with_suffix(".md")):  # before minutes of measuring, not after
        output_folder(path)
    rows = Rows(device_name(dev))
    lines: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="etc-bench-") as tmp_name:
            tmp = Path(tmp_name)
            if scale == "paper":
                from etc.bench.paper import run_paper_bench

                lines = run_paper_bench(config, rows, tmp, dev, quick)
            else:
                _small_bench(rows, config, tmp, dev, quick)
        if scale != "paper":
            bench_rules(rows, Path(results_dir or out_csv.parent), out_csv.with_name("bench_rules.png"))
    except BaseException:
        if rows.rows:  # a one-off GPU session keeps what was measured before the failure
            _write(rows, out_csv.with_name(out_csv.stem + ".partial.csv"), lines)
        raise
    _write(rows, out_csv, lines)
    return rows.rows, lines


def _small_bench(rows: Rows, config: dict, tmp: Path, dev: torch.device, quick: bool) -> None:
    sizes = [(256, 512)] if quick else [(512, 1024), (1024, 2048)]
    bench_inference_parity(rows, config, sizes, dev, repeats=3 if quick else 11)
    bench_inference_options(rows, config, dev, repeats=3 if quick else 5, size=sizes[0], heavy=not quick)
    from etc.bench.export import bench_export

    bench_export(rows, config, sizes, dev, repeats=3 if quick else 5)
    cfg = _tiny_setup(tmp, config, quick)
    bench_pipeline(rows, cfg, tmp, dev, big=sizes[0], compile=not quick)
    bench_keyframe(rows, cfg, tmp, dev, quick)
    bench_training(rows, cfg, tmp, dev, quick)
    bench_flow(rows, cfg, tmp, quick)
    bench_memory(rows, cfg, tmp, dev)
    if dev.type == "cpu":
        bench_malloc(rows, config, sizes[-1], repeats=2 if quick else 5)


def _write(rows: Rows, out_csv: Path, lines: list[str]) -> None:
    import pandas as pd

    from etc.core.io import atomic_path, write_text

    df = pd.DataFrame(rows.rows, columns=["benchmark", "metric", "value", "unit", "device"])
    with atomic_path(out_csv) as t:
        df.to_csv(t, index=False)
    table = ["| benchmark | metric | value | unit |", "|---|---|---|---|"]
    table += [f"| {r.benchmark} | {r.metric} | {r.value:.4g} | {r.unit} |" for r in df.itertuples()]
    notes = ("\n\n```\n" + "\n".join(lines) + "\n```") if lines else ""
    write_text(out_csv.with_suffix(".md"), f"Device: {rows.device}\n\n" + "\n".join(table) + notes + "\n")
