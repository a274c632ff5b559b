"""What each stage's jobs ask the scheduler for: threads, host memory (MB) and GPUs, from the
config alone (the ``resources`` section, the frame size, batch sizes and workers).

The memory figures are estimates, meant to be generous rather than tight: a process with torch
and the decoders loaded held 0.8–1.0 GB in every job of the smoke run (its benchmark TSVs'
max_rss), and the data term is the frames a job holds at once times the bytes each pixel costs
there. tests/test_reads.py checks every job of the smoke run against its estimate. A scheduler
that still kills a job: raise ``resources.mem_scale``, or ``snakemake --set-resources
RULE:mem_mb=N``. Torch-free: the Snakefile imports it.
"""

from __future__ import annotations

import math

AUTO = "auto"
BASE_MB = 1536  # one process with torch, timm, cv2 and h5py imported, and room to spare
CUDA_BASE_MB = 3072  # the same with the CUDA context and libraries mapped (host side)
WORKER_MB = 512  # one decode worker process or thread pool share, before its batches
MB = 2**20
# Bytes per input pixel of one frame that a job keeps at once (float32 unless noted):
TRAIN_CPU_BYTES = 4 * 256  # activations kept for the backward pass (PSPNet-18 at stride 8 keeps ~200 floats)
BATCH_BYTES = 4 * 8  # a decoded, augmented frame in a batch: image, label, flow, occlusion
INFER_CPU_BYTES = 4 * 128  # one forward pass's activations (no gradients), full-resolution scores
FLOW_BYTES = 4 * 48  # a pair's frames, forward and backward flow, occlusion and the estimator's pyramid
CLIP_FRAMES = 30  # frames of a clip held at once by evaluation, the report and the demo (Cityscapes snippets)
CLIP_BYTES = 4 * 6  # a frame's labels of every model, its flow and the warped labels


def frame_size(config: dict) -> tuple[int, int]:
    """(H, W) the dataset's frames are read at."""
    from etc.data.sets import get_spec

    ds = config["dataset"]
    size = get_spec(ds["name"]).frame_size
    return size if size else (int(ds["synthetic"]["height"]), int(ds["synthetic"]["width"]))


def training_pixels(config: dict) -> int:
    """Pixels of one training frame: the crop, else the frame at the largest scale."""
    crop = config["augment"]["crop"]
    if crop:
        return int(crop[0]) * int(crop[1])
    h, w = frame_size(config)
    return int(h * w * max(config["augment"]["scale"]) ** 2)


def cuda(config: dict) -> bool:
    return config["resources"]["device"] == "cuda"


def threads(config: dict, stage: str) -> int:
    """Threads of a job of ``stage`` (flow, train, infer, evaluate, report, timed)."""
    return int(config["resources"]["threads"][stage])


def workers(value, config: dict, stage: str, use: str) -> int:
    """Decode workers a job will start (etc.core.execution.auto_workers, as the job will resolve it
    with the threads given here)."""
    if value != AUTO:
        return int(value)
    n = threads(config, stage)
    if cuda(config):
        return max(1, min(16, n - 1))
    return n if use == "infer" and n >= 2 else 0


def train_gpus(config: dict, which: str) -> int:
    """GPUs of a training job: train.<which>.gpus on CUDA, none on CPU (gloo processes)."""
    return int(config["train"][which]["gpus"]) if cuda(config) else 0


def frames_per_sample(config: dict, run: str) -> int:
    """Frames one training sample runs: the labelled frame, its neighbour for a student, a third
    for MF over three frames."""
    if run == "teacher":
        return 1
    return 3 if int(config["losses"]["mf_frames"]) == 3 else 2


def _mb(nbytes: float) -> int:
    return int(math.ceil(nbytes / MB))


def _scaled(config: dict, mb: float) -> int:
    return int(math.ceil(mb * float(config["resources"]["mem_scale"])))


def train_mem_mb(config: dict, which: str) -> int:
    """Host memory of a training job: per process the base, the batches its decode workers hold
    (two ahead each), and on CPU the step's activations (plus a teacher's forward)."""
    schedule = config["train"][which]
    batch = int(schedule["batch_size"])
    frames = batch * frames_per_sample(config, "teacher" if which == "teacher" else "student")
    pixels = training_pixels(config)
    n_workers = workers(schedule["num_workers"], config, "train", "train")
    processes = int(schedule["gpus"])
    held = WORKER_MB * n_workers + _mb(pixels * frames * BATCH_BYTES * (1 + 2 * n_workers))
    if cuda(config):
        return _scaled(config, processes * CUDA_BASE_MB + held)
    teacher = 0 if which == "teacher" else _mb(pixels * frames * INFER_CPU_BYTES)
    return _scaled(config, processes * BASE_MB + held + _mb(pixels * frames * TRAIN_CPU_BYTES) + teacher)


def infer_mem_mb(config: dict) -> int:
    """A batch of frames through the network (on CPU) and the batches decoded ahead."""
    batch = int(config["infer"]["batch_size"]) * (2 if config["infer"]["flip"] else 1)
    h, w = frame_size(config)
    n_workers = workers(config["infer"]["num_workers"], config, "infer", "infer")
    held = WORKER_MB * n_workers + _mb(h * w * batch * BATCH_BYTES * (2 + n_workers))
    if cuda(config):
        return _scaled(config, CUDA_BASE_MB + held)
    return _scaled(config, BASE_MB + held + _mb(h * w * batch * INFER_CPU_BYTES))


def evaluate_mem_mb(config: dict) -> int:
    """Each evaluating process holds a clip at a time (evaluate.num_workers: one per thread above one)."""
    h, w = frame_size(config)
    value = config["evaluate"]["num_workers"]
    n = threads(config, "evaluate")
    processes = 1 + (int(value) if value != AUTO else (n if n >= 2 else 0))
    return _scaled(config, processes * (BASE_MB + _mb(h * w * CLIP_FRAMES * CLIP_BYTES)))


def data_mem_mb(config: dict) -> int:
    """Writing the synthetic set, checking a dataset tree, resolving the config: a frame at a time."""
    h, w = frame_size(config)
    return _scaled(config, BASE_MB + _mb(h * w * CLIP_BYTES))


def bench_mem_mb(config: dict) -> int:
    """etc bench: it trains and infers tiny models at the config's frame size, in subprocesses one
    after the other."""
    return max(infer_mem_mb(config), train_mem_mb(config, "student"))


def score_mem_mb(config: dict) -> int:
    """etc keyframe-score: one process reading a clip of label maps at a time."""
    h, w = frame_size(config)
    return _scaled(config, BASE_MB + _mb(h * w * CLIP_FRAMES * CLIP_BYTES))


def flow_mem_mb(config: dict) -> int:
    h, w = frame_size(config)
    base = CUDA_BASE_MB if cuda(config) else BASE_MB
    return _scaled(config, base + _mb(h * w * int(config["flow"]["batch_size"]) * FLOW_BYTES))


def report_mem_mb(config: dict) -> int:
    """The report, the demo video and the study reports: a clip of every model's labels at a time."""
    h, w = frame_size(config)
    return _scaled(config, BASE_MB + _mb(h * w * CLIP_FRAMES * CLIP_BYTES * 4))


def flow_gpus(config: dict, spec: str) -> int:
    """A ptlflow model runs on the GPU when the config's jobs do; DIS and the exact flow on CPU."""
    return 1 if cuda(config) and spec.startswith("ptlflow:") else 0


def infer_gpus(config: dict) -> int:
    """Inference, the latency stream, evaluation (evaluate.device auto: CUDA when present)."""
    return 1 if cuda(config) else 0
