"""``etc infer``: strictly per-frame predictions for every frame of every clip of a split.

Every frame goes through the network alone (batched across frames, no temporal state), so the
ETC-trained student costs exactly what the baseline costs. Predictions are uint8 train-id maps
in one HDF5 file (a dataset per clip, T×H×W); a timing JSON records the speed.
"""

from __future__ import annotations

import logging
import statistics
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from etc.core.errors import EtcError
from etc.core.filekind import PREDICTIONS_FORMAT, expect_predictions
from etc.core.io import atomic_path, output_folder, write_json
from etc.infer.upsample_argmax import upsample_argmax

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, flip: bool = False, bf16: bool = False,
            fused: bool = False) -> torch.Tensor:
    """B×3×H×W normalised images → B×H×W labels (softmax-averaged flip TTA when asked).

    ``fused`` (without flip): the labels straight from the network's stride-s scores
    (etc.infer.upsample_argmax), never materialising the full-resolution ones. Otherwise scores are
    reduced over the last axis of a B×H×W×C view: with channels_last logits that view is
    contiguous, and argmax over it is much faster than over dim 1 of an NCHW tensor (softmax on
    a channels_last tensor returns NCHW, which made argmax cost more than the network).
    Without flip the argmax of the logits is taken directly (softmax is monotone).
    """
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        if fused and not flip:
            out = model(images, full_logits=False)
            h, w = images.shape[-2:]
            return upsample_argmax(out["logits_low"], out["logits_size"])[:, :h, :w]
        scores = model(images)["logits"].float().permute(0, 2, 3, 1)
        if flip:
            flipped = model(images.flip(-1))["logits"].float().permute(0, 2, 3, 1).flip(2)
            scores = scores.softmax(-1) + flipped.softmax(-1)
    return scores.argmax(-1)


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, images: torch.Tensor, flip: bool = False,
                          bf16: bool = False) -> torch.Tensor:
    """B×3×H×W normalised images → B×K×H×W float32 softmax probabilities: the scores whose
    argmax :func:`predict` takes (with ``flip`` the mean of the frame's and its mirror's), at
    the input resolution. Their argmax is :func:`predict`'s labels up to float rounding at
    near-ties (the softmax, and the fused upsampling of :func:`predict`, round otherwise)."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        probs = model(images)["logits"].float().softmax(1)
        if flip:
            probs = (probs + model(images.flip(-1))["logits"].float().softmax(1).flip(-1)) / 2
    return probs.contiguous()


def make_predictor(model: torch.nn.Module, flip: bool = False, bf16: bool = False, compile: bool = False,
                   fused: bool = False):
    """images → labels, optionally through ``torch.compile`` (which never takes the fused path:
    its data-dependent block selection would break the graph; compiling fuses the upsampling
    with the argmax by itself).

    On a CPU compiling made images → labels faster than eager under glibc's default allocator,
    but with the heap tuning the `etc` CLI applies (etc.core.malloc) eager channels_last is as
    fast (docs/performance.md). Labels differ at a few pixels (rounding at ties), and every
    batch shape costs seconds of compilation. Kept opt-in for
    accelerators, where fusion matters more; not measured on a GPU yet.
    """
    if not compile:
        return lambda images: predict(model, images, flip, bf16, fused)
    return torch.compile(lambda images: predict(model, images, flip, bf16), dynamic=False)


def infer(
    config: dict,
    model_ckpt: str | Path,
    split: str,
    out: str | Path,
    *,
    timing: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    keyframe=None,
) -> dict:
    """Predict every frame of ``split`` into ``out``; write and return the timing record.

    ``keyframe`` (etc.infer.keyframe.KeyframeOptions) with an interval above 1 streams each clip one
    frame at a time through etc.infer.keyframe.KeyframePredictor: the network on keyframes, the
    flow (timed with the frame) and the propagation on the others.

    On CUDA three stages overlap: ``infer.num_workers`` threads decode uint8 batches ahead of
    the network into pinned memory (etc.data.feed), the network runs, and a writer thread waits for
    each finished clip's labels to arrive from the GPU and compresses them into the HDF5 file
    (h5py releases the GIL). On a CPU the network needs every core while it runs, so the stages
    take turns in this thread, except that ``infer.num_workers`` threads (if any) decode the
    frames of each batch at once; the first batch decodes while the model loads.
    """
    import h5py
    from tqdm import tqdm

    from etc.core.device import pick_device
    from etc.core.execution import resolve_execution
    from etc.data.clips import list_clips
    from etc.data.feed import BatchFeed, to_network
    from etc.infer.fusion import FusionOptions, check_strength
    from etc.infer.keyframe import KeyframeOptions

    icfg = config["infer"]
    flip, batch_size = bool(icfg["flip"]), int(icfg["batch_size"])
    keyframe = keyframe or KeyframeOptions()
    fusion = check_strength(icfg.get("temporal_fusion") or 0.0)
    if fusion > 0 and keyframe.active:
        raise EtcError("--temporal-fusion (infer.temporal_fusion) fuses per-frame predictions; a keyframe run "
                       "(--keyframe-interval > 1) takes --temporal-fusion 0")
    if keyframe.active or fusion > 0:
        if flip:
            raise EtcError("--flip (infer.flip) is per-frame test-time augmentation; a keyframe run "
                           "(--keyframe-interval > 1) or a temporal fusion (--temporal-fusion > 0) takes --no-flip")
        batch_size = 1  # a stream: each frame's labels before the next frame is read
    streamed = keyframe.active or fusion > 0
    fused = FusionOptions(fusion, keyframe.estimator, keyframe.ckpt) if fusion > 0 else None
    dev = pick_device(device)
    ex = resolve_execution(icfg, dev, "infer")
    ex.apply(dev)
    ds = config["dataset"]
    clips = list_clips(ds["name"], ds["root"], split, strict=False)
    out = Path(out)
    timing = Path(timing) if timing else out.with_suffix(".timing.json")
    for path in (out, timing):  # before the frames are segmented, not after
        output_folder(path)
    frames = sum(len(c) for c in clips)
    batches = [(ci, lo) for ci, c in enumerate(clips) for lo in range(0, len(c), batch_size)]
    gpu = dev.type == "cuda"  # the CPU is free while the device computes: overlap everything
    feed = BatchFeed([[f.image for f in clips[ci].frames[lo:lo + batch_size]] for ci, lo in batches],
                     threads=ex.num_workers, pin=gpu, normalised=not gpu and not streamed, ahead=gpu)
    timer = _Timer(dev, warmup=int(icfg["warmup"]), synchronise=batch_size == 1)
    size = None
    preds: dict[int, list] = {}
    with feed:  # the first batch decodes while the model loads
        model, state = load_inference_model(model_ckpt, dev, ex, ds["name"])
        run = make_predictor(model, flip, ex.bf16, ex.compile, ex.fused_labels)
        if keyframe.active:
            from etc.infer.keyframe import anchors, keyframe_predictor

            starts = anchors(clips, keyframe)
            stream = keyframe_predictor(model, keyframe, state, ex, dev, ds["root"])
            # reads the loop's current frame (raw, ci, lo) when called in it, below
            run = lambda images: stream(images, raw[0].numpy(), clips[ci], lo, starts[ci])  # noqa: E731
        elif fused is not None:
            from etc.infer.fusion import fusion_predictor

            fuse = fusion_predictor(model, fused, ex, dev, ds["root"])
            run = lambda images: fuse(images, raw[0].numpy(), clips[ci], lo)  # noqa: E731
        t0 = time.perf_counter()
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5, _ClipWriter(h5, threaded=gpu) as writer, \
                tqdm(total=frames, desc="infer", unit="frame", disable=not progress or None) as bar:
            h5.attrs.update({"format": PREDICTIONS_FORMAT, "checkpoint": str(model_ckpt), "split": split, "flip": flip,
                             "dataset": ds["name"]})
            if keyframe.active:
                h5.attrs.update({k: v for k, v in keyframe.describe().items() if v is not None})
            if fused is not None:
                h5.attrs.update(fused.describe())
            for (ci, lo), raw in zip(batches, feed, strict=True):
                size = size or tuple(raw.shape[1:3])
                imgs = to_network(raw, dev, ex.channels_last)
                with timer.span(imgs.shape[0]):
                    pred = run(imgs)
                preds.setdefault(ci, []).append(_HostLabels(pred))
                bar.update(imgs.shape[0])
                clip = clips[ci]
                if lo + batch_size >= len(clip):  # clip complete: write it
                    writer.submit(clip, preds.pop(ci))
    wall = time.perf_counter() - t0
    med = timer.median_per_frame()
    frame_ms = timer.frame_ms()
    info = {
        "device": device_name(dev),
        "resolution": list(size) if size else None,
        "batch_size": batch_size,
        "warmup_batches": int(icfg["warmup"]),
        "flip": flip,
        **ex.describe(),
        "frames": frames,
        "median_ms_per_frame": med * 1000.0,
        "fps": 1.0 / med if med > 0 else float("nan"),
        # the whole stream once the model is ready: decode, network, labels back, compression
        # and writing (the first batch decodes while the model loads and is not counted)
        "pipeline_fps": frames / wall if wall > 0 else float("nan"),
        # every timed frame (past warm-up): its own latency in a stream (batch 1, the device
        # synchronised around it), its share of its batch otherwise
        **latency_summary(frame_ms),
        "frame_ms": frame_ms,
        **keyframe.describe(),
        **(fused.describe() if fused is not None else {}),
    }
    write_json(timing, info)
    return info


def load_inference_model(ckpt: str | Path, dev: torch.device, ex, dataset: str | None) -> tuple[torch.nn.Module, dict]:
    """(the checkpoint's network on ``dev`` in ``ex``'s memory format, in eval mode; its saved
    dict), refused when it was trained on another dataset than the config reads (``dataset``
    None: any, for frames of no dataset — etc segment-video, the Python API)."""
    from etc.models.checkpoint import load_model_from_checkpoint

    model, state = load_model_from_checkpoint(ckpt, map_location=dev)
    if dataset is not None and state.get("dataset") not in (None, dataset):
        raise EtcError(f"{ckpt} was trained on {state['dataset']}, the config reads {dataset}")
    return model.to(dev, memory_format=ex.memory_format).eval(), state


def latency_summary(frame_ms: list[float], keyframes: list[bool] | None = None) -> dict:
    """Mean, median, 95th and 99th percentile and maximum of the per-frame times (ms). The 99th
    percentile is the robust worst case: the maximum is one frame, often a scheduler hiccup.
    ``keyframes`` (one flag per time, a keyframe stream's): also the median over keyframes
    and over propagated frames."""
    out = {f"ms_per_frame_{k}": None for k in ("mean", "p50", "p95", "p99", "max")}
    if frame_ms:
        a = np.asarray(frame_ms, np.float64)
        out = {"ms_per_frame_mean": float(a.mean()), "ms_per_frame_p50": float(np.percentile(a, 50)),
               "ms_per_frame_p95": float(np.percentile(a, 95)), "ms_per_frame_p99": float(np.percentile(a, 99)),
               "ms_per_frame_max": float(a.max())}
    if keyframes is not None:
        key = np.asarray(keyframes, bool)
        a = np.asarray(frame_ms, np.float64)
        out["ms_keyframe_p50"] = float(np.median(a[key])) if key.any() else None
        out["ms_propagated_p50"] = float(np.median(a[~key])) if (~key).any() else None
    return out


class _Timer:
    """Seconds per frame of each batch's images → labels, past ``warmup`` batches. On CUDA
    measured between events, so timing never makes the CPU wait for the GPU; ``synchronise``
    (a stream of single frames): the device is synchronised around each span instead, so that
    each frame's time is its latency, flow estimation on the CPU included."""

    def __init__(self, dev: torch.device, warmup: int, synchronise: bool = False):
        self.cuda, self.warmup = dev.type == "cuda", warmup
        self.sync = synchronise and self.cuda
        self.spans: list[tuple] = []  # (start, end, frames)

    def _mark(self):
        if self.sync:
            torch.cuda.synchronize()
            return time.perf_counter()
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    @contextmanager
    def span(self, frames: int):
        start = self._mark()
        yield
        end = self._mark()
        if self.warmup > 0:
            self.warmup -= 1
        else:
            self.spans.append((start, end, frames))

    def per_frame(self) -> list[float]:
        """Seconds per frame of each timed span."""
        if self.cuda and not self.sync:
            if self.spans:
                self.spans[-1][1].synchronize()
            return [a.elapsed_time(b) / 1000.0 / n for a, b, n in self.spans]
        return [(b - a) / n for a, b, n in self.spans]

    def median_per_frame(self) -> float:
        return statistics.median(self.per_frame()) if self.spans else float("nan")

    def frame_ms(self) -> list[float]:
        """One value per timed frame (a batch's n frames share its time equally), in ms."""
        return [s * 1000.0 for s, (_, _, n) in zip(self.per_frame(), self.spans, strict=True) for _ in range(n)]


class _HostLabels:
    """A batch of labels on its way to host memory as uint8: on CUDA a non-blocking copy into
    pinned memory, complete once :meth:`numpy` returns."""

    def __init__(self, pred: torch.Tensor):
        pred = pred.to(torch.uint8)
        if pred.device.type == "cuda":
            self.host = torch.empty(pred.shape, dtype=torch.uint8, pin_memory=True)
            self.host.copy_(pred, non_blocking=True)
            self.ready = torch.cuda.Event()
            self.ready.record()
        else:
            self.host, self.ready = pred, None

    def numpy(self) -> np.ndarray:
        if self.ready is not None:
            self.ready.synchronize()
        return self.host.numpy()


class _ClipWriter:
    """Writes each finished clip as one dataset, in order; in a thread when ``threaded`` (its
    errors are raised here, at the next submit or at exit)."""

    def __init__(self, h5, threaded: bool):
        self.h5 = h5
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="write") if threaded else None
        self.pending: list[Future] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is None:
            return
        try:
            if exc[0] is None:
                for fut in self.pending:
                    fut.result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, clip, parts: list[_HostLabels]) -> None:
        if self.pool is None:
            self._write(clip, parts)
            return
        done = [f for f in self.pending if f.done()]
        for fut in done:
            fut.result()
        self.pending = [f for f in self.pending if not f.done()]
        self.pending.append(self.pool.submit(self._write, clip, parts))

    def _write(self, clip, parts: list[_HostLabels]) -> None:
        labels = np.concatenate([p.numpy() for p in parts])
        dset = self.h5.create_dataset(clip.name, data=labels, chunks=(1, *labels.shape[1:]), compression="lzf")
        dset.attrs["frame_numbers"] = [f.number for f in clip.frames]
        dset.attrs["labelled"] = list(clip.labelled)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    from etc.core.device import cpu_description

    return f"cpu ({cpu_description()})"


def read_predictions(path: str | Path, names=None) -> dict[str, np.ndarray]:
    """clip name → T×H×W uint8 predictions (of the clips ``names`` that the file holds, when
    given)."""
    import h5py

    path = expect_predictions(path)
    wanted = None if names is None else set(names)
    try:
        with h5py.File(path, "r") as h5:
            return {name: h5[name][()] for name in h5 if wanted is None or name in wanted}
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise EtcError(f"predictions {path} cannot be read ({reason}); the file is damaged or "
                       f"truncated: delete it and rerun `etc infer`") from None
