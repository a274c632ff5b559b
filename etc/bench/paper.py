"""``etc bench --scale paper``: throughput of the config's real networks at Cityscapes frame
size (1024×2048), each figure against what the device alone could do, in one run.

1. `etc infer` frames/s (the whole stream: decode, copy, network, argmax, copy back, write)
   against the bare forward of the same batch, layout and precision (two forwards per frame
   when the config asks for flip test-time augmentation, as the Cityscapes preset does);
2. training samples/s of the teacher and of every student × ablation through the real loader
   against a loader-free step (the same batch already on the device), with the share of time
   the step waited for the loader and the peak GPU memory;
3. the estimated wall time of the whole preset: Σ iterations × batch / samples/s.

The set is small (three clips generated at full size; inference reads hard links to one of
them, as many clips as it needs), so that the benchmark fits a short GPU session (≤ 6 minutes
on one H100, set included): ``scripts/gpu_check.sh``. ``quick`` shrinks the frames to 64×128
(crop in proportion) so that the same code runs in a CPU test.
"""

from __future__ import annotations

import gc
import logging
import os
import statistics
import time
from pathlib import Path

import torch

from etc.core.device import sync

log = logging.getLogger(__name__)

PAPER_SIZE = (1024, 2048)
QUICK_SIZE = (64, 128)


def paper_config(config: dict, root: Path, size: tuple[int, int]) -> dict:
    """``config``'s networks, augmentation, losses, ablations and schedules on the synthetic set
    at ``root``: no pretrained weights (speed only), exact flow (no flow network), the crop
    scaled with the frames."""
    from etc.core.config import load_config

    ratio = size[0] / PAPER_SIZE[0]
    augment = dict(config["augment"])
    if augment.get("crop"):
        augment["crop"] = [max(8, round(c * ratio)) for c in augment["crop"]]

    def bare(spec: dict) -> dict:
        return {**spec, "pretrained": None}

    return load_config(None, {
        **config,
        "dataset": {"name": "synthetic", "root": str(root), "window": config["dataset"]["window"]},
        "teacher": bare(config["teacher"]),
        "students": {name: bare(spec) for name, spec in config["students"].items()},
        "augment": augment,
        "flow": {**config["flow"], "estimator": "gt", "ckpt": None},
    })


def link_clips(root: Path, split: str, out: Path, copies: int) -> Path:
    """A Cityscapes-layout tree at ``out`` whose ``split`` holds ``copies`` clips, each made of
    hard links to the frames of ``root``'s first clip (decoding cost is per file, so this is a
    long split without generating it). Its clips are deliberate copies without labels: list
    them with ``strict=False``, as etc infer does."""
    from etc.data.clips import cityscapes_image_path, list_clips

    clip = list_clips("synthetic", root, split)[0]
    city = clip.extra["city"]
    (out / "gtFine" / split).mkdir(parents=True, exist_ok=True)
    for seq in range(copies):
        for frame in clip.frames:
            dst = cityscapes_image_path(out, split, city, seq, frame.number)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                try:
                    os.link(frame.image, dst)
                except OSError:  # another file system: a copy reads the same
                    dst.write_bytes(Path(frame.image).read_bytes())
    return out


def measure_run(cfg: dict, name: str, tmp: Path, dev: torch.device, *, flow: Path, teacher: Path | None,
                warm: int, steps: int, free_steps: int, save_as: Path | None = None) -> dict:
    """Samples/s of ``steps`` training steps through the loader (after ``warm``), the median
    loader-free step on the last batch, the loader-wait share and the peak GPU memory.

    Through the loader the rate is total samples over total time, not a median: workers
    deliver in bursts, and a median of step times would hide the waits between bursts.
    """
    from etc.models.checkpoint import save_checkpoint
    from etc.plan.runs import resolve_run
    from etc.train.loop import build_run, train_step

    spec = resolve_run(cfg, name)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    training = build_run(cfg, spec, tmp / f"{name.replace('/', '_')}.last.pt", flow=flow, teacher=teacher, device=str(dev))
    if save_as is not None:  # before any step: the checkpoint exists even if a step runs out of memory
        save_checkpoint(save_as, training.state(0))
    batch_size = int(spec.schedule["batch_size"])
    batches = iter(training.loader)
    spans, waits = [], []
    sync(dev)
    last = time.perf_counter()
    for i in range(warm + steps):
        batch = next(batches)
        got = time.perf_counter()
        train_step(training, batch)
        sync(dev)
        now = time.perf_counter()
        if i >= warm:
            spans.append(now - last)
            waits.append(got - last)
        last = now
    # persistent workers outlive the iterator (the loader keeps it): drop the loader and collect
    # it now, which ends them, not when the garbage collector gets to the run, so no run is
    # measured beside another's workers
    del batches
    training.loader = None
    gc.collect()
    on_device = {k: v.to(dev) for k, v in batch.items()}
    free = []
    for i in range(1 + free_steps):
        sync(dev)
        t0 = time.perf_counter()
        train_step(training, on_device)
        sync(dev)
        if i:
            free.append(time.perf_counter() - t0)
    result = {
        "samples_per_s": batch_size * len(spans) / sum(spans),
        "loader_free_samples_per_s": batch_size / statistics.median(free),
        "loader_wait_share": sum(waits) / sum(spans),
        "workers": training.execution.num_workers,
        "iterations": int(spec.schedule["iterations"]),
        "batch_size": batch_size,
    }
    if dev.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    del training, on_device, batch
    return result


def bare_forward_fps(model: torch.nn.Module, batch: int, size: tuple[int, int], dev: torch.device,
                     channels_last: bool, bf16: bool, repeats: int, flip: bool = False) -> float:
    """Frames/s of the network alone on a batch already on the device (median of ``repeats``);
    with ``flip`` two forwards per frame, as flip test-time augmentation runs."""
    x = torch.randn(batch, 3, *size, device=dev).contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    times = []
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(2 + repeats):
            sync(dev)
            t0 = time.perf_counter()
            model(x)["logits"]
            if flip:
                model(x.flip(-1))["logits"]
            sync(dev)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def bench_paper_inference(rows, cfg: dict, tmp: Path, dev: torch.device, student_ckpt: Path, teacher_ckpt: Path,
                          size, copies: int, repeats: int) -> None:
    from etc.core.config import load_config
    from etc.core.execution import resolve_execution
    from etc.data.clips import list_clips, read_image
    from etc.infer.predict import infer
    from etc.models.checkpoint import load_model_from_checkpoint

    root = link_clips(Path(cfg["dataset"]["root"]), "val", tmp / "infer_set", copies)
    icfg = load_config(None, {**cfg, "dataset": {**cfg["dataset"], "root": str(root)}})
    frames = [f for c in list_clips("synthetic", root, "val", strict=False) for f in c.frames]
    tag = f"{size[0]}x{size[1]}"
    infer(icfg, student_ckpt, "val", tmp / "pred.h5", device=str(dev), progress=False)  # untimed: autotuning, caches
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    info = infer(icfg, student_ckpt, "val", tmp / "pred.h5", device=str(dev), progress=False)
    call_fps = len(frames) / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    ex = resolve_execution(icfg["infer"], dev, "infer")
    model, _ = load_model_from_checkpoint(student_ckpt, map_location=dev)
    model.to(dev, memory_format=ex.memory_format).eval()
    flip = bool(icfg["infer"]["flip"])
    bare = bare_forward_fps(model, int(icfg["infer"]["batch_size"]), size, dev, ex.channels_last, ex.bf16, repeats, flip)
    t0 = time.perf_counter()
    for f in frames[:4]:
        read_image(f.image)
    decode_ms = 1000.0 * (time.perf_counter() - t0) / len(frames[:4])
    throughput = f"frames/s, throughput at batch {int(icfg['infer']['batch_size'])}"
    rows.add("paper_infer", f"infer_frames_per_s_{tag}", info["pipeline_fps"], throughput)
    rows.add("paper_infer", f"infer_call_frames_per_s_{tag}", call_fps, throughput)
    rows.add("paper_infer", f"bare_forward_frames_per_s_{tag}", bare, throughput)
    rows.add("paper_infer", f"infer_over_bare_{tag}", info["pipeline_fps"] / bare, "ratio")
    rows.add("paper_infer", f"infer_call_over_bare_{tag}", call_fps / bare, "ratio")
    rows.add("paper_infer", f"predict_ms_per_frame_{tag}", info["median_ms_per_frame"], "ms/frame")
    rows.add("paper_infer", f"png_decode_ms_per_frame_{tag}", decode_ms, "ms/frame")
    rows.add("paper_infer", "frames", len(frames), "frames")
    for key in ("channels_last", "bf16", "cudnn_benchmark", "compile", "fused_labels"):
        rows.add("paper_infer", f"option_{key}", float(info[key]), "bool")
    rows.add("paper_infer", "decode_threads", info["num_workers"], "threads")
    if peak is not None:
        rows.add("paper_infer", "peak_cuda", peak, "MB")
    teacher, _ = load_model_from_checkpoint(teacher_ckpt, map_location=dev)
    teacher.to(dev, memory_format=ex.memory_format).eval()
    bench_paper_options(rows, model, int(icfg["infer"]["batch_size"]), size, dev, repeats)
    rows.add("paper_infer", "flip", float(flip), "bool")
    rows.add("paper_infer", f"student_forward_ms_per_frame_{tag}", 1000.0 / bare / (2 if flip else 1), "ms/frame")
    rows.add("paper_infer", f"teacher_forward_ms_per_frame_{tag}", 1000.0 / bare_forward_fps(
        teacher, int(icfg["infer"]["batch_size"]), size, dev, ex.channels_last, ex.bf16, max(2, repeats // 2)), "ms/frame")
    del teacher, model


def bench_paper_options(rows, model: torch.nn.Module, batch: int, size, dev: torch.device, repeats: int) -> None:
    """Images → labels of the student under each layout × precision (× cudnn autotuning on
    CUDA), and NHWC fp32 with the fused labels, against plain NCHW fp32: the measurement the
    CUDA ``auto`` choices await."""
    from etc.infer.predict import make_predictor

    tag = f"{size[0]}x{size[1]}"
    x = torch.randn(batch, 3, *size, device=dev)
    autotune = (False, True) if dev.type == "cuda" else (False,)
    before = torch.backends.cudnn.benchmark
    ms = {}
    try:
        for bench in autotune:
            torch.backends.cudnn.benchmark = bench
            for channels_last in (False, True):
                layout = torch.channels_last if channels_last else torch.contiguous_format
                model.to(memory_format=layout)
                xi = x.contiguous(memory_format=layout)
                # the fused labels (etc.infer.upsample_argmax) on the layout they are meant for
                for bf16, fused in ((False, False), (True, False)) + (((False, True),) if channels_last else ()):
                    run = make_predictor(model, bf16=bf16, fused=fused)
                    times = []
                    for i in range(2 + repeats):
                        sync(dev)
                        t0 = time.perf_counter()
                        run(xi)
                        sync(dev)
                        if i >= 2:
                            times.append(time.perf_counter() - t0)
                    name = (f"{'nhwc' if channels_last else 'nchw'}_{'bf16' if bf16 else 'fp32'}"
                            f"{'_fused' if fused else ''}{'_cudnn_benchmark' if bench else ''}")
                    ms[name] = 1000.0 * statistics.median(times) / batch
    finally:
        torch.backends.cudnn.benchmark = before
    rows.add("paper_options", f"predict_ms_nchw_fp32_{tag}", ms["nchw_fp32"], "ms/frame")
    for name, v in ms.items():
        if name != "nchw_fp32":
            rows.add("paper_options", f"{name}_over_nchw_fp32_{tag}", v / ms["nchw_fp32"], "ratio")


def bench_train_options(rows, cfg: dict, name: str, tmp: Path, dev: torch.device, flow: Path, teacher: Path,
                        free_steps: int) -> None:
    """Loader-free samples/s of run ``name`` under each layout × precision, against the
    ``auto`` choice of the device."""
    from etc.core.config import load_config

    student = name.split("/")[0]
    rates = {}
    for channels_last in (False, True):
        for bf16 in (False, True):
            c = load_config(None, {**cfg, "train": {**cfg["train"], "student": {
                **cfg["train"]["student"], "channels_last": channels_last, "bf16": bf16, "num_workers": 0}}})
            r = measure_run(c, name, tmp, dev, flow=flow, teacher=teacher, warm=0, steps=1, free_steps=free_steps)
            rates[f"{'nhwc' if channels_last else 'nchw'}_{'bf16' if bf16 else 'fp32'}"] = r["loader_free_samples_per_s"]
    c = load_config(None, {**cfg, "train": {**cfg["train"], "student": {**cfg["train"]["student"], "num_workers": 0}}})
    auto = measure_run(c, name, tmp, dev, flow=flow, teacher=teacher, warm=0, steps=1, free_steps=free_steps)
    for key, v in rates.items():
        rows.add("paper_options", f"train_{student}_samples_per_s_{key}_over_auto", v / auto["loader_free_samples_per_s"], "ratio")


def run_paper_bench(config: dict, rows, tmp: Path, dev: torch.device, quick: bool) -> list[str]:
    """Fill ``rows``; returns the summary lines the CLI prints (the preset's estimated time)."""
    from etc.data.synthetic import make_synthetic
    from etc.flow.precompute import precompute_flow
    from etc.plan.runs import TEACHER, resolve_run

    size = QUICK_SIZE if quick else PAPER_SIZE
    t0 = time.perf_counter()
    cfg = paper_config(config, tmp / "data", size)
    make_synthetic(tmp / "data", train_clips=2, val_clips=1, frames=6, height=size[0], width=size[1], seed=0)
    flow = tmp / "train.h5"
    precompute_flow(cfg, "train", flow, estimator="gt", progress=False)
    rows.add("paper_setup", f"set_s_{size[0]}x{size[1]}", time.perf_counter() - t0, "s")

    free_steps = 2 if quick else 5
    teacher_ckpt, student_ckpt = tmp / "teacher.pt", tmp / "student.pt"
    runs = [TEACHER] + [f"{s}/{a}" for s in cfg["students"] for a in cfg["ablations"]]
    first_student = f"{next(iter(cfg['students']))}/{next(iter(cfg['ablations']))}"
    measured: dict[str, dict] = {}
    # the two runs that save the checkpoints first, then inference, then the other runs: the
    # figures a short GPU session most needs come first, should its time run out
    first, rest = runs[:1] + [first_student], [n for n in runs[1:] if n != first_student]
    for name in first + ["inference"] + rest:
        if name == "inference":
            bench_paper_inference(rows, cfg, tmp, dev, student_ckpt, teacher_ckpt, size, copies=2 if quick else 16,
                                  repeats=3 if quick else 10)
            continue
        # n workers deliver their first batches together, then one round of n batches per
        # batch time: skip the first round, then time one whole round (at least 8 steps)
        workers = _workers(cfg, name, dev)
        warm, steps = (1, 2) if quick else (workers + 2, max(8, workers + 1))
        save = teacher_ckpt if name == TEACHER else student_ckpt if name == first_student else None
        try:
            r = measure_run(cfg, name, tmp, dev, flow=flow, teacher=teacher_ckpt if name != TEACHER else None,
                            warm=warm, steps=steps, free_steps=free_steps, save_as=save)
        except torch.OutOfMemoryError:
            log.warning("%s: out of GPU memory at batch %s", name, resolve_run(cfg, name).schedule["batch_size"])
            rows.add("paper_train", f"{name}_out_of_memory", 1, "flag")
            torch.cuda.empty_cache()
            continue
        measured[name] = r
        rows.add("paper_train", f"{name}_samples_per_s", r["samples_per_s"], "samples/s")
        rows.add("paper_train", f"{name}_loader_free_samples_per_s", r["loader_free_samples_per_s"], "samples/s")
        rows.add("paper_train", f"{name}_over_loader_free", r["samples_per_s"] / r["loader_free_samples_per_s"], "ratio")
        rows.add("paper_train", f"{name}_loader_wait_share", r["loader_wait_share"], "share")
        rows.add("paper_train", f"{name}_workers", r["workers"], "processes")
        if "peak_cuda_mb" in r:
            rows.add("paper_train", f"{name}_peak_cuda", r["peak_cuda_mb"], "MB")

    bench_train_options(rows, cfg, first_student, tmp, dev, flow, teacher_ckpt, free_steps)

    hours = {n: r["iterations"] * r["batch_size"] / r["samples_per_s"] / 3600.0 for n, r in measured.items()}
    free_hours = {n: r["iterations"] * r["batch_size"] / r["loader_free_samples_per_s"] / 3600.0 for n, r in measured.items()}
    rows.add("paper_setup", "bench_s", time.perf_counter() - t0, "s")
    rows.add("paper_estimate", "preset_hours", sum(hours.values()), "h")
    rows.add("paper_estimate", "preset_hours_loader_free", sum(free_hours.values()), "h")
    lines = [f"estimated wall time of the preset on {rows.device} (one process per run, one after another):"]
    lines += [f"  {n:<24} {measured[n]['iterations']:>7} it × {measured[n]['batch_size']} at "
              f"{measured[n]['samples_per_s']:7.2f} samples/s = {h:7.2f} h (loader-free {free_hours[n]:.2f} h)"
              for n, h in hours.items()]
    lines += [f"  {n:<24} not measured: out of GPU memory" for n in runs if n not in measured]
    lines.append(f"  total {sum(hours.values()):.1f} h (loader-free {sum(free_hours.values()):.1f} h)"
                 + ("" if len(measured) == len(runs) else ", runs that did not fit left out"))
    return lines


def _workers(cfg: dict, name: str, dev: torch.device) -> int:
    from etc.core.execution import resolve_workers
    from etc.plan.runs import resolve_run

    return resolve_workers(resolve_run(cfg, name).schedule["num_workers"], dev)
