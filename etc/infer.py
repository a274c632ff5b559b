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
from pathlib import Path

import numpy as np
import torch

from etc.errors import EtcError
from etc.io import atomic_path, write_json

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, flip: bool = False, bf16: bool = False) -> torch.Tensor:
    """B×3×H×W normalised images → B×H×W int64 labels (softmax-averaged flip TTA when asked).

    Scores are reduced over the last axis of a B×H×W×C view: with channels_last logits that
    view is contiguous, and argmax over it is ~9× faster than over dim 1 of an NCHW tensor
    (softmax on a channels_last tensor returns NCHW, which made argmax cost more than the
    network). Without flip the argmax of the logits is taken directly (softmax is monotone).
    """
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        scores = model(images)["logits"].float().permute(0, 2, 3, 1)
        if flip:
            flipped = model(images.flip(-1))["logits"].float().permute(0, 2, 3, 1).flip(2)
            scores = scores.softmax(-1) + flipped.softmax(-1)
    return scores.argmax(-1)


class _Inline:
    """An executor that runs each job at submission, in the calling thread."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut


def _loader_pool(dev: torch.device):
    """Prefetch the next batch in a thread on CUDA only: there the CPU idles while the GPU
    computes. On CPU the network already keeps every core busy and a prefetch thread only
    adds contention (measured on 2 cores: 0.80× the frames/s at 96×192, equal at 512×1024)."""
    return ThreadPoolExecutor(1) if dev.type == "cuda" else _Inline()


def make_predictor(model: torch.nn.Module, flip: bool = False, bf16: bool = False, compile: bool = False):
    """images → labels, optionally through ``torch.compile``.

    Compiling fuses the final upsampling with the argmax, so full-resolution logits are never
    materialised. On 2 CPU cores at 512×1024 that made images → labels 0.55–0.66× the eager
    time under glibc's default allocator, but with the heap tuning the `etc` CLI applies
    (etc.malloc) eager channels_last is as fast (bench: 0.315 vs 0.295 of plain NCHW). Labels
    differ on ~3 pixels in 10⁷ (rounding at ties); ~10 s of compilation per batch shape. Kept
    opt-in for accelerators, where fusion matters more; not measured on a GPU yet.
    """
    if not compile:
        return lambda images: predict(model, images, flip, bf16)
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
) -> dict:
    import h5py
    from tqdm import tqdm

    from etc.checkpoint import load_model_from_checkpoint
    from etc.data.clips import list_clips, read_image
    from etc.data.pairs import images_to_batch
    from etc.device import pick_device, sync

    icfg = config["infer"]
    flip, batch_size = bool(icfg["flip"]), int(icfg["batch_size"])
    dev = pick_device(device)
    model, state = load_model_from_checkpoint(model_ckpt, map_location=dev)
    model.to(dev).eval()
    channels_last = bool(icfg["channels_last"])
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    bf16 = bool(icfg["bf16"])
    run = make_predictor(model, flip, bf16, bool(icfg["compile"]))
    ds = config["dataset"]
    if state.get("dataset") not in (None, ds["name"]):
        raise EtcError(f"{model_ckpt} was trained on {state['dataset']}, the config reads {ds['name']}")
    clips = list_clips(ds["name"], ds["root"], split, strict=False)
    out = Path(out)
    timing = Path(timing) if timing else out.with_suffix(".timing.json")

    frames = [(c, i) for c in clips for i in range(len(c))]
    batches = [(ci, lo) for ci, c in enumerate(clips) for lo in range(0, len(c), batch_size)]
    times: list[float] = []  # seconds per frame, per batch
    warmup = int(icfg["warmup"])
    size = None

    def load(item):
        ci, lo = item
        return images_to_batch([read_image(f.image) for f in clips[ci].frames[lo:lo + batch_size]], channels_last)

    preds: dict[int, list] = {}
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5, _loader_pool(dev) as pool, \
            tqdm(total=len(frames), desc="infer", unit="frame", disable=not progress or None) as bar:
        h5.attrs.update({"checkpoint": str(model_ckpt), "split": split, "flip": flip, "dataset": ds["name"]})
        pending = pool.submit(load, batches[0]) if batches else None
        for i, (ci, lo) in enumerate(batches):
            imgs = pending.result()
            pending = pool.submit(load, batches[i + 1]) if i + 1 < len(batches) else None
            size = size or tuple(imgs.shape[-2:])
            imgs = imgs.to(dev, non_blocking=True)
            sync(dev)
            t0 = time.perf_counter()
            pred = run(imgs)
            sync(dev)
            if warmup > 0:
                warmup -= 1
            else:
                times.append((time.perf_counter() - t0) / imgs.shape[0])
            preds.setdefault(ci, []).append(pred.to(torch.uint8).cpu().numpy())
            bar.update(imgs.shape[0])
            clip = clips[ci]
            if lo + batch_size >= len(clip):  # clip complete: write it
                labels = np.concatenate(preds.pop(ci))
                dset = h5.create_dataset(clip.name, data=labels, chunks=(1, *labels.shape[1:]), compression="lzf")
                dset.attrs["frame_numbers"] = [f.number for f in clip.frames]
                dset.attrs["labelled"] = list(clip.labelled)
    med = statistics.median(times) if times else float("nan")
    info = {
        "device": device_name(dev),
        "resolution": list(size) if size else None,
        "batch_size": batch_size,
        "warmup_batches": int(icfg["warmup"]),
        "flip": flip,
        "channels_last": channels_last,
        "bf16": bf16,
        "compile": bool(icfg["compile"]),
        "frames": len(frames),
        "median_ms_per_frame": med * 1000.0,
        "fps": 1.0 / med if times and med > 0 else float("nan"),
    }
    write_json(timing, info)
    return info


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """clip name → T×H×W uint8 predictions."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise EtcError(f"predictions {path} not found; run `etc infer` first")
    with h5py.File(path, "r") as h5:
        return {name: h5[name][()] for name in h5}
