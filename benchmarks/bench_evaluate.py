"""Benchmark of ``etc evaluate`` at Cityscapes size (docs/evaluation.md has the figures).

    python benchmarks/bench_evaluate.py [--device cpu|cuda] [--clips 2] [--frames 8] [--size 1024x2048]

Writes its own inputs (a Cityscapes-layout tree of N and 4N clips, their predictions and a
half-scale float16 flow store: smooth random label maps and flow, so nothing is downloaded),
then prints one summary:
- the counting pass (etc.evaluate.metrics.pair_counts: TC, TC-occ, flicker of a pair, one pass) in
  ms/pair on one CPU thread or the device, beside the previous implementation (one warp and
  five pooled TC updates, CPU);
- ``etc evaluate`` of N and 4N clips, each in a fresh subprocess on one CPU thread: ms/pair of
  the whole evaluation (flow reading and resizing, mIoU, every metric; the one beyond the first
  N clips leaves the start-up out) and the peak RSS of the
  subprocess (its own VmHWM: a forked child's ``ru_maxrss`` starts at its parent's RSS), with
  the 4N/N ratio (issue 24: within 1.15);
- with ``--device cuda``: whether the pair counts and the whole metrics JSON equal the CPU's.

A separate script, not an ``etc bench`` section: it needs no workflow run (``etc bench`` times
the rules of one) and the lead runs it alone on a GPU machine. About a minute on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python benchmarks/bench_evaluate.py` from a checkout imports its etc

CITY = "benchcity"
ANNOTATED = 19  # the Cityscapes snippet's annotated frame number
# Cityscapes label ids of the 19 classes (their train ids 0..18)
LABEL_IDS = np.array([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33], np.uint8)


def smooth(rng, shape, cells, scale, dtype=np.float32):
    """A smooth random field: ``cells`` random values upsampled (bilinear) to ``shape``."""
    import cv2

    low = rng.standard_normal(cells).astype(np.float32) * scale
    return cv2.resize(low, shape[::-1], interpolation=cv2.INTER_LINEAR).astype(dtype)


def label_maps(rng, frames: int, h: int, w: int) -> np.ndarray:
    """T×H×W train ids: random regions drifting a few pixels a frame, 1 % noise."""
    import cv2

    base = cv2.resize(rng.integers(0, 19, (16, 32)).astype(np.uint8), (w + 4 * frames, h), interpolation=cv2.INTER_NEAREST)
    out = np.stack([base[:, 4 * t : 4 * t + w] for t in range(frames)])
    noise = rng.random(out.shape) < 0.01
    out[noise] = rng.integers(0, 19, int(noise.sum()))
    return out


def make_inputs(root: Path, clips: int, frames: int, h: int, w: int, seed: int = 0) -> dict:
    """Trees of ``clips`` and ``4 × clips`` clips sharing one predictions file and flow store."""
    import cv2
    import h5py

    from etc.flow.store import StoreWriter

    rng = np.random.default_rng(seed)
    sh, sw = h // 2, w // 2
    names = [f"{CITY}_{s:06d}_{ANNOTATED:06d}" for s in range(4 * clips)]
    first = ANNOTATED - frames // 2
    writer = StoreWriter(root / "flow.h5", {"estimator": "dis", "ckpt_sha256": "", "dataset": "cityscapes", "split": "val",
                                           "pairs": "consecutive", "image_size": [h, w], "stored_size": [sh, sw],
                                           "scale": 0.5, "dtype": "float16", "units": "pixels at stored_size"})
    with h5py.File(root / "predictions.h5", "w") as h5:
        for s, name in enumerate(names):
            pred = label_maps(rng, frames, h, w)
            h5.create_dataset(name, data=pred, chunks=(1, h, w), compression="lzf")
            for tree in (("n", "n4") if s < clips else ("n4",)):
                images = root / tree / "leftImg8bit_sequence" / "val" / CITY
                labels = root / tree / "gtFine" / "val" / CITY
                images.mkdir(parents=True, exist_ok=True)
                labels.mkdir(parents=True, exist_ok=True)
                for n in range(first, first + frames):  # evaluate lists the frames, never decodes them
                    (images / f"{CITY}_{s:06d}_{n:06d}_leftImg8bit.png").touch()
                gt = LABEL_IDS[label_maps(rng, 1, h, w)[0]]
                cv2.imwrite(str(labels / f"{CITY}_{s:06d}_{ANNOTATED:06d}_gtFine_labelIds.png"), gt)
            for t in range(frames - 1):
                fw = np.stack([smooth(rng, (sh, sw), (6, 12), 6.0), smooth(rng, (sh, sw), (6, 12), 3.0)]).astype(np.float16)
                occ = (smooth(rng, (sh, sw), (24, 48), 1.0) > 1.6).astype(np.uint8)
                writer.write(name, t, t + 1, fw, -fw, occ, occ)
    writer.finish()
    return {"n": root / "n", "n4": root / "n4", "predictions": root / "predictions.h5", "flow": root / "flow.h5"}


def pairs_for_counting(h: int, w: int, count: int, seed: int = 1):
    """(P_t, P_{t+1}, flow at full size, occluded) of ``count`` pairs, CPU tensors."""
    import torch

    from etc.flow.warp import resize_flow

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        p = label_maps(rng, 2, h, w)
        half = np.stack([smooth(rng, (h // 2, w // 2), (6, 12), 6.0), smooth(rng, (h // 2, w // 2), (6, 12), 3.0)])
        flow = resize_flow(torch.from_numpy(half.astype(np.float16).astype(np.float32))[None], (h, w))[0]
        occ = torch.from_numpy(smooth(rng, (h, w), (24, 48), 1.0) > 1.6)
        out.append((torch.from_numpy(p[0]), torch.from_numpy(p[1]), flow, occ))
    return out


def counting_ms(pairs, device: str) -> tuple[float, float, list]:
    """Median wall and CPU ms/pair of the one-pass counting (prediction source) on ``device``
    (CPU time: what one core spends, whatever else the machine runs), and the counts."""
    from etc.core.device import sync
    from etc.evaluate.metrics.pair_counts import PairWarp

    on = [tuple(x.to(device) for x in pair) for pair in pairs]
    wall, cpu, counts = [], [], []
    for rep in range(3):
        for a, b, flow, occ in on:
            sync(device)
            t0, c0 = time.perf_counter(), time.thread_time()
            c = PairWarp(flow, occ).confusion(a, b, 19)
            sync(device)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
            if rep == 0:
                counts.append(c.cpu())
    return 1000 * float(np.median(wall[len(on):])), 1000 * float(np.median(cpu[len(on):])), counts


def previous_ms(pairs) -> tuple[float, float]:
    """ms/pair of the implementation before the one pass: a warp, then five pooled TC updates
    (TC, TC-all, TC-occ, flicker, per-clip TC) on NumPy."""
    from etc.evaluate.metrics.consistency import PooledTC
    from etc.flow.warp import warp_labels

    wall, cpu = [], []
    for a, b, flow, occ in pairs:
        t0, c0 = time.perf_counter(), time.thread_time()
        warped = warp_labels(b.long()[None], flow[None])[0].numpy().astype(np.uint8)
        for exclude in (None, None, occ.numpy(), occ.numpy(), None):
            PooledTC(19).update_warped(a.numpy(), warped, exclude)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return 1000 * float(np.median(wall)), 1000 * float(np.median(cpu))


CHILD = """
import json, sys, time
from etc.core.malloc import keep_freed_memory
keep_freed_memory()  # as the etc command line does
from etc.core.config import load_config
from etc.evaluate.evaluate import evaluate
cfg = load_config(None, json.loads(sys.argv[1]))
t0, c0 = time.perf_counter(), time.process_time()
r = evaluate(cfg, sys.argv[2], sys.argv[3], sys.argv[4], progress=False)
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
hwm = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "pairs": r["pairs"], "peak_mb": hwm}))
"""


def run_evaluate(tree: Path, inputs: dict, out: Path, device: str) -> dict:
    """``etc evaluate`` of ``tree`` in a fresh subprocess on one CPU thread."""
    overrides = {"dataset": {"name": "cityscapes", "root": str(tree)}, "flow": {"estimator": "dis", "scale": 0.5},
                 "evaluate": {"num_workers": 0, "device": device}}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(overrides), str(inputs["predictions"]),
                          str(inputs["flow"]), str(out)], env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"etc evaluate failed ({tree}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda: where the pairs are counted.")
@click.option("--clips", "n", default=2, show_default=True, help="N: the trees have N and 4N clips.")
@click.option("--frames", default=8, show_default=True, help="Frames per clip (Cityscapes snippets have 30).")
@click.option("--size", default="1024x2048", show_default=True, help="H×W of the frames.")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the inputs here and keep them (default: a temporary folder).")
def main(device, n, frames, size, keep):
    import torch

    torch.set_num_threads(1)
    h, w = (int(v) for v in size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench_evaluate_") as tmp:
        root = Path(keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        inputs = make_inputs(root, n, frames, h, w)
        made = time.perf_counter() - t0
        pairs = pairs_for_counting(h, w, 4)
        ms_cpu, cpu_ms, counts_cpu = counting_ms(pairs, "cpu")
        ms_prev, cpu_prev = previous_ms(pairs[:2])
        # twice each: a subprocess's peak RSS varies by a few % from run to run
        runs = {k: [run_evaluate(inputs[k], inputs, root / f"{k}.{device}.json", device) for _ in range(2)]
                for k in ("n", "n4")}
        lines = [f"etc evaluate benchmark: {h}×{w}, {frames} frames a clip, N = {n} clips, device {device}, "
                 f"inputs written in {made:.0f} s, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
                 f"  counting pass (TC, TC-occ, flicker of a pair) on 1 CPU thread: {cpu_ms:.1f} ms/pair CPU time "
                 f"({ms_cpu:.1f} wall); previous (warp + 5 pooled updates): {cpu_prev:.1f} CPU ({ms_prev:.1f} wall), "
                 f"{cpu_prev / cpu_ms:.1f}× the CPU time"]
        if device != "cpu":
            ms_dev, _, counts_dev = counting_ms(pairs, device)
            same = all(torch.equal(a, b) for a, b in zip(counts_cpu, counts_dev, strict=True))
            lines.append(f"  counting pass on {device}: {ms_dev:.2f} ms/pair; counts equal to the CPU's: {same}")
        fastest = {k: min(r["seconds"] for r in v) for k, v in runs.items()}
        cpu_s = {k: min(r["cpu_seconds"] for r in v) for k, v in runs.items()}
        n_pairs = {k: v[0]["pairs"] for k, v in runs.items()}
        peaks = {k: sorted(r["peak_mb"] for r in v) for k, v in runs.items()}
        for k, label in (("n", "N"), ("n4", "4N")):
            lines.append(f"  etc evaluate, {label} = {n_pairs[k] // (frames - 1)} clips ({n_pairs[k]} pairs): "
                         f"{1000 * fastest[k] / n_pairs[k]:.1f} ms/pair wall, peak RSS {peaks[k][0]:.0f}–{peaks[k][-1]:.0f} MB")
        extra = n_pairs["n4"] - n_pairs["n"]
        lines.append(f"  etc evaluate per pair beyond the first N clips (start-up costs cancel): "
                     f"{1000 * (cpu_s['n4'] - cpu_s['n']) / extra:.1f} ms/pair CPU time "
                     f"({1000 * (fastest['n4'] - fastest['n']) / extra:.1f} wall)")
        ratio = peaks["n4"][-1] / peaks["n"][0]
        lines.append(f"  peak RSS 4N / N, largest over smallest: {ratio:.3f} ({'within' if ratio <= 1.15 else 'OVER'} 1.15)")
        if device != "cpu":
            cpu = run_evaluate(inputs["n4"], inputs, root / "n4.cpu.json", "cpu")
            same = (root / "n4.cpu.json").read_bytes() == (root / f"n4.{device}.json").read_bytes()
            lines.append(f"  metrics JSON of 4N on {device} byte-equal to the CPU's: {same} "
                         f"(CPU run {1000 * cpu['seconds'] / cpu['pairs']:.1f} ms/pair)")
        click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
