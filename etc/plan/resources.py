"""What each stage's jobs ask the scheduler for: threads, host memory (MB) and GPUs, from the
config alone (the ``resources`` section, the frame size, crop, batch sizes, workers and threads,
the backbones and, for a student, the frames and teacher its ablation runs).

A job's memory is the base of its process (torch, timm, cv2 and h5py imported; far less for the
torch-free data checks), once per process it starts (evaluation workers, DDP processes, training
decode workers), plus the bytes it keeps per pixel of the frames it holds at once: a training
step's activations (per backbone), a frozen teacher's forward, a forward pass's activations, the
decoded batches, a clip's label maps and flow. The per-pixel figures are fitted to
benchmarks/peak_rss.py, which runs every stage of workflow/configs/cityscapes.yaml on a generated
tree at its frame size on CPU and checks measured ≤ declared ≤ 2 × measured for each job
(docs/scheduler.md has its table, machine and date); tests/test_workflow.py checks every job of
the smoke run against its estimate. The CUDA figures cover the host side only (the activations
live on the GPU) and are not measured. A scheduler that still kills a job: raise
``resources.mem_scale``, or ``snakemake --set-resources RULE:mem_mb=N``. Torch-free: the Snakefile
imports it.
"""

from __future__ import annotations

import math

AUTO = "auto"
BASE_MB = 1152  # one process with torch, timm, cv2 and h5py imported (RSS), and a little room
LIGHT_MB = 136  # a process without torch: check-data, make-synthetic (NumPy, cv2, h5py)
CUDA_BASE_MB = 3072  # the same with the CUDA context and libraries mapped (host side)
WORKER_MB = 512  # one training decode worker process (spawned), before its batches
EVAL_WORKER_MB = 384  # one evaluation worker process (spawned), before its clip
MB = 2**20
# Bytes per input pixel of one frame that a job keeps at once (float32 unless noted):
# a training step's activations kept for the backward pass, per backbone (PSPNet at stride 8;
# a backbone not listed takes the largest figure; tiny, unmeasured at full size, the ResNet-18's)
TRAIN_CPU_BYTES = {"tiny": 4 * 600, "resnet18": 4 * 600, "resnet101": 4 * 3300}
TEACHER_CPU_BYTES = 4 * 350  # a frozen teacher's forward beside a student's step (no gradients), with the KD terms
BATCH_BYTES = 4 * 8  # a decoded, augmented frame in a batch: image, label, flow, occlusion
# one forward pass's activations (no gradients) and its full-resolution scores, per backbone
INFER_CPU_BYTES = {"tiny": 4 * 100, "resnet18": 4 * 100, "resnet101": 4 * 540}
# with flip the two passes run one after the other: the first pass's full-resolution scores and
# their softmax are kept while the mirrored pass runs (its activations then freed)
FLIP_BYTES = 4 * 60
STREAM_BYTES = 4 * 64  # a keyframe run's state: the keyframe's scores or features, the flow to it
# etc latency: each row's network loaded on its own (float32 weights, per backbone; tiny: the
# ResNet-18's) and, for a keyframe or fused row, the scores it carries to the next frame
WEIGHTS_MB = {"tiny": 64, "resnet18": 64, "resnet101": 272}
ROW_STATE_BYTES = 4 * 24
REPORT_MB = 1024  # etc report and the study reports: tables and figures of JSON and CSV, no frame held
SCORE_BASE_MB = 640  # etc keyframe-score: torch imported, no network built
SCORE_BYTES = 4 * 40  # its pass over the labelled frame (label maps, masks, the confusion's indices)
FLOW_BYTES = 4 * 52  # a pair's frames, forward and backward flow, occlusion and the estimator's pyramid
CLIP_FRAMES = 30  # frames of a clip held at once by evaluation and the demo (Cityscapes snippets)
CLIP_BYTES = 4 * 6  # a frame's labels of every model, its flow and the warped labels (demo, data checks)
EVAL_CLIP_BYTES = 4 * 2  # evaluation: a clip's label maps (uint8) and the pair being counted


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


TEACHER_PRIORITY = 100  # above every student: the distilled students wait for the teacher


def train_priority(config: dict, which: str, ablation: str | None = None) -> int:
    """The scheduler's order among training jobs that can start: the teacher first, then the
    students with the most loss terms (the longest steps) before the shorter ones, so that the
    longest job after the teacher, the critical path, starts first and the shorter ones fill the
    other cores (the longest-first rule of list scheduling)."""
    from etc.losses.registry import active_terms

    if which == "teacher":
        return TEACHER_PRIORITY
    return len(active_terms(config["ablations"][ablation]))


def frames_per_sample(config: dict, run: str, ablation: str | None = None) -> int:
    """Frames one training sample runs: the labelled frame, its neighbour for a term that needs it
    (TL, PF, MF), a third for MF over three frames. A student without ``ablation``: the most of
    the config's ablations."""
    from etc.losses import ablation_needs

    if run == "teacher":
        return 1
    if ablation is None:
        return max(frames_per_sample(config, run, name) for name in config["ablations"])
    terms = config["ablations"][ablation]
    if not ablation_needs(terms, "needs_neighbour"):
        return 1
    return 3 if ablation_needs(terms, "needs_third") and int(config["losses"]["mf_frames"]) == 3 else 2


def _needs_teacher(config: dict, ablation: str | None) -> bool:
    from etc.losses import ablation_needs

    names = [ablation] if ablation is not None else list(config["ablations"])
    return any(ablation_needs(config["ablations"][n], "needs_teacher") for n in names)


def train_bytes(backbone: str) -> int:
    """Activation bytes per input pixel a training step keeps for ``backbone`` (the largest
    figure for one not listed)."""
    return TRAIN_CPU_BYTES.get(backbone, max(TRAIN_CPU_BYTES.values()))


def _student_bytes(config: dict, student: str | None) -> int:
    names = [student] if student is not None else list(config["students"])
    return max(train_bytes(config["students"][n]["backbone"]) for n in names)


def _mb(nbytes: float) -> int:
    return int(math.ceil(nbytes / MB))


def _scaled(config: dict, mb: float) -> int:
    return int(math.ceil(mb * float(config["resources"]["mem_scale"])))


def train_mem_mb(config: dict, which: str, ablation: str | None = None, student: str | None = None) -> int:
    """Host memory of a training job: per process the base, the batches its decode workers hold
    (two ahead each), and on CPU the step's activations (the backbone's, per frame the ablation
    runs) plus a frozen teacher's forward. A student without ``ablation`` / ``student``: the
    largest of the config's."""
    schedule = config["train"][which]
    batch = int(schedule["batch_size"])
    frames = batch * frames_per_sample(config, "teacher" if which == "teacher" else "student", ablation)
    pixels = training_pixels(config)
    n_workers = workers(schedule["num_workers"], config, "train", "train")
    processes = int(schedule["gpus"])
    held = WORKER_MB * n_workers + _mb(pixels * frames * BATCH_BYTES * (1 + 2 * n_workers))
    if cuda(config):
        return _scaled(config, processes * CUDA_BASE_MB + held)
    if which == "teacher":
        activations = _mb(pixels * frames * train_bytes(config["teacher"]["backbone"]))
        return _scaled(config, processes * BASE_MB + held + activations)
    activations = _mb(pixels * frames * _student_bytes(config, student))
    teacher = _mb(pixels * frames * TEACHER_CPU_BYTES) if _needs_teacher(config, ablation) else 0
    return _scaled(config, processes * BASE_MB + held + activations + teacher)


def _model_backbones(config: dict, model: str | None) -> list[str]:
    """Backbones of ``model`` (``teacher`` or ``student/ablation``), or of every model."""
    if model == "teacher":
        return [config["teacher"]["backbone"]]
    if model is not None:
        return [config["students"][model.split("/")[0]]["backbone"]]
    return [config["teacher"]["backbone"], *(s["backbone"] for s in config["students"].values())]


def infer_bytes(backbone: str) -> int:
    """Activation bytes per input pixel of one forward pass (no gradients) for ``backbone`` (the
    largest figure for one not listed)."""
    return INFER_CPU_BYTES.get(backbone, max(INFER_CPU_BYTES.values()))


def infer_mem_mb(config: dict, model: str | None = None, stream: bool = False) -> int:
    """A batch of frames through ``model``'s network (with infer.flip both ways, one pass after
    the other; without ``model`` the largest of the config's) and the batches decoded for it: on CUDA as many ahead
    as decode threads (etc.data.feed), on CPU between forward passes. ``stream``: a keyframe or
    fused run (etc latency's base: latency_mem_mb), one frame at a time without flip, the
    propagated scores kept."""
    frames = 1 if stream else int(config["infer"]["batch_size"])
    flip = FLIP_BYTES if config["infer"]["flip"] and not stream else 0
    h, w = frame_size(config)
    if cuda(config):
        n_workers = workers(config["infer"]["num_workers"], config, "infer", "infer")  # threads of the process
        return _scaled(config, CUDA_BASE_MB + _mb(h * w * frames * BATCH_BYTES * (2 + n_workers)))
    held = _mb(h * w * frames * BATCH_BYTES * 2) + (_mb(h * w * STREAM_BYTES) if stream else 0)
    per_pixel = max(infer_bytes(b) for b in _model_backbones(config, model))
    return _scaled(config, BASE_MB + held + _mb(h * w * frames * (per_pixel + flip)))


def evaluate_mem_mb(config: dict) -> int:
    """The evaluating process and its workers (evaluate.num_workers; auto: one per thread above
    one), each holding a clip at a time; a spawned worker imports less than the main process."""
    h, w = frame_size(config)
    value = config["evaluate"]["num_workers"]
    n = threads(config, "evaluate")
    n_workers = int(value) if value != AUTO else (n if n >= 2 else 0)
    clip = _mb(h * w * CLIP_FRAMES * EVAL_CLIP_BYTES)
    return _scaled(config, BASE_MB + clip + n_workers * (EVAL_WORKER_MB + clip))


def data_mem_mb(config: dict) -> int:
    """Writing the synthetic set, checking a dataset tree, resolving the config: a frame at a
    time, without torch."""
    h, w = frame_size(config)
    return _scaled(config, LIGHT_MB + _mb(h * w * CLIP_BYTES))


def latency_mem_mb(config: dict) -> int:
    """etc latency (keyframe_latency): every row of the comparison (etc.plan.keyframe_rows) loaded
    in one process and streamed a frame at a time, in turns: on CPU a stream's base and a forward
    pass of the largest network, plus each row's weights and each keyframe or fused row's carried
    scores; on CUDA the host side of a stream (the networks live on the GPU)."""
    from etc.plan.keyframe_rows import keyframe_rows

    stream = infer_mem_mb(config, stream=True)
    if cuda(config):
        return stream
    h, w = frame_size(config)
    rows = keyframe_rows(config)
    weights = sum(WEIGHTS_MB.get(b, max(WEIGHTS_MB.values())) for r in rows for b in _model_backbones(config, r["model"]))
    state = sum(1 for r in rows if r["kind"] != "per-frame") * _mb(h * w * ROW_STATE_BYTES)
    return stream + _scaled(config, weights + state)


def bench_mem_mb(config: dict) -> int:
    """etc bench: it trains and infers tiny models at the config's frame size, in subprocesses one
    after the other."""
    return max(infer_mem_mb(config), train_mem_mb(config, "student"))


def score_mem_mb(config: dict) -> int:
    """etc keyframe-score: the labelled frame of each clip from each of a setting's K offset runs
    (K: the largest keyframe interval), scored one at a time."""
    h, w = frame_size(config)
    k = max(int(i) for i in config["keyframe"]["intervals"]) if config["keyframe"]["intervals"] else 1
    return _scaled(config, SCORE_BASE_MB + _mb(h * w * (SCORE_BYTES + 4 * k)))


def flow_mem_mb(config: dict) -> int:
    h, w = frame_size(config)
    base = CUDA_BASE_MB if cuda(config) else BASE_MB
    return _scaled(config, base + _mb(h * w * int(config["flow"]["batch_size"]) * FLOW_BYTES))


def report_mem_mb(config: dict) -> int:
    """etc report and the study reports: the results table and its figures, drawn from the
    metrics, rows and training-curve files (no frame or label map is read; the figures' memory is
    that of matplotlib and pandas, not of the frame size)."""
    return _scaled(config, REPORT_MB)


def demo_mem_mb(config: dict) -> int:
    """etc demo-video: a clip's frames, every model's labels and the flow, and the grid frames
    composed from them (the video's and the GIF's), held at once."""
    h, w = frame_size(config)
    return _scaled(config, BASE_MB + _mb(h * w * CLIP_FRAMES * CLIP_BYTES * 4))


def flow_gpus(config: dict, spec: str) -> int:
    """A ptlflow model runs on the GPU when the config's jobs do; DIS and the exact flow on CPU."""
    return 1 if cuda(config) and spec.startswith("ptlflow:") else 0


def infer_gpus(config: dict) -> int:
    """Inference, the latency stream, evaluation (evaluate.device auto: CUDA when present)."""
    return 1 if cuda(config) else 0

