"""``etc precompute-flow``: forward and backward flow plus occlusion for every pair that
training (labelled frame × window) and evaluation (consecutive frames) need, computed once.

A three-stage pipeline keeps the estimator busy: a thread decodes the next batch's frames,
the estimator runs in the caller's thread, and a writer thread runs the fb check (on the
estimator's device), compresses and appends to the store (torch, h5py and cv2 release the GIL). Resumable and never
silently corrupt: see etc.flow.store.StoreWriter. Deterministic: same inputs, same datasets.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from etc.core.device import checked_device
from etc.core.disk import check_free_disk
from etc.core.errors import EtcError
from etc.core.filekind import expect_flow_store
from etc.flow.store import StoreWriter, flow_store_bytes, mismatched, read_attrs

log = logging.getLogger(__name__)

PAIR_SETS = ("training", "consecutive", "both")


def select_pairs(clips, window, which: str, anchor_stride: int = 1):
    """``training``: each labelled frame t with t+k for every k of the window (inside the clip);
    ``consecutive``: (t, t+1) for every t; ``both``: the union. A pair and its reverse are one
    entry (the store holds both directions)."""
    from etc.data.clips import consecutive_pairs, training_pairs

    if which not in PAIR_SETS:
        raise EtcError(f"--pairs must be one of {', '.join(PAIR_SETS)}, got '{which}'")
    chosen = []
    if which in ("training", "both"):
        chosen += training_pairs(clips, window, anchor_stride)
    if which in ("consecutive", "both"):
        chosen += consecutive_pairs(clips)
    seen, out = set(), []
    for clip, a, b in chosen:
        key = (clip.name, min(a, b), max(a, b))
        if key not in seen:
            seen.add(key)
            out.append((clip, a, b))
    return out


def default_pairs(config: dict, split: str) -> str:
    """Training split: what the losses read; any other split: what TC reads."""
    return "training" if split == config["dataset"]["train_split"] else "consecutive"


class _Writer(threading.Thread):
    """Finishes and writes batches in order, overlapping the estimator's next batch: the fb
    check, resizing and casting (with one torch thread: two OpenMP teams on the same cores slow
    each other down badly), then compression and HDF5 writes. Its errors are re-raised in the
    caller's thread."""

    def __init__(self, store: StoreWriter, size: tuple[int, int], dtype: torch.dtype, on_pair):
        super().__init__(daemon=True, name="flow-writer")
        self.store, self.size, self.dtype, self.on_pair = store, size, dtype, on_pair
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.written = 0
        self.caller_threads = torch.get_num_threads()

    def run(self) -> None:
        torch.set_num_threads(1)  # per thread: the estimator's thread keeps its own count
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self._write(*item)
                except BaseException as exc:  # handed to the caller's thread
                    self.error = exc

    @torch.no_grad()
    def _write(self, batch, fw, bw, occ_fw, occ_bw) -> None:
        from etc.flow.estimators import occlusion

        occ_fw, occ_bw = occlusion(fw, bw, occ_fw, occ_bw)
        fw, occ_fw = _to_numpy(fw, occ_fw, self.size, self.dtype)
        bw, occ_bw = _to_numpy(bw, occ_bw, self.size, self.dtype)
        for j, (clip, a, b) in enumerate(batch):
            self.store.write(clip.name, a, b, fw[j], bw[j], occ_fw[j], occ_bw[j])
            self.written += 1
            self.on_pair()

    def put(self, item) -> None:
        while True:
            self._raise()
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self.stop()
        self._raise()

    def stop(self) -> None:
        """Let the queued batches land (they are complete results), then end the thread."""
        if self.is_alive():
            self.queue.put(None)
            self.join()
        # run()'s torch.set_num_threads(1) is per thread only once torch's pool exists: when this
        # thread was the first to touch it, the whole process was left with one thread (a later
        # training in-process summed floats in another order: other weights than a fresh
        # `etc train`). Restore the caller's count.
        torch.set_num_threads(self.caller_threads)

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


def _to_numpy(flow: torch.Tensor, occ: torch.Tensor, size, dtype) -> tuple[np.ndarray, np.ndarray]:
    from etc.flow.warp import resize_flow

    if tuple(flow.shape[-2:]) != tuple(size):
        flow = resize_flow(flow, tuple(size))
        occ = torch.nn.functional.interpolate(occ[:, None].float(), tuple(size), mode="nearest")[:, 0] > 0.5
    return flow.to(dtype).cpu().numpy(), occ.to(torch.uint8).cpu().numpy()


def precompute_flow(
    config: dict,
    split: str,
    out: str | Path,
    *,
    estimator: str | None = None,
    ckpt: str | Path | None = None,
    pairs: str | None = None,
    scale: float | None = None,
    dtype: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    compression: str = "lzf",
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Compute the store of ``split`` into ``out`` (arguments left None come from ``config``).

    ``limit``: stop after this many newly computed pairs, leaving ``OUT.partial.h5`` (a
    planned interruption: tests, or spreading a long run over several jobs). Returns counts and
    throughput (``pairs_per_s`` excludes loading the estimator).
    """
    from tqdm import tqdm

    from etc.data.clips import list_clips, read_image
    from etc.flow.estimators import make_estimator

    flow_cfg, ds = config["flow"], config["dataset"]
    spec = estimator or flow_cfg["estimator"]
    ckpt = ckpt if ckpt is not None else flow_cfg.get("ckpt")
    scale = float(scale if scale is not None else flow_cfg["scale"])
    dtype = dtype or flow_cfg["dtype"]
    batch_size = int(batch_size or flow_cfg["batch_size"])
    pairs = pairs or default_pairs(config, split)
    if dtype not in ("float16", "float32"):
        raise EtcError(f"flow dtype must be float16 or float32, got '{dtype}'")
    if not 0 < scale <= 1:
        raise EtcError(f"flow scale must be in (0, 1], got {scale}")
    out, root = Path(out), Path(ds["root"])
    clips = list_clips(ds["name"], root, split, strict=False)
    if not clips:
        raise EtcError(f"no clips in split '{split}' of {ds['name']} under {root}; run `etc check-data`")
    todo = select_pairs(clips, ds["window"], pairs, ds["anchor_stride"])
    h, w = read_image(clips[0].frames[0].image).shape[:2]
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    device = str(checked_device(device)) if device else ("cuda" if torch.cuda.is_available() and spec.startswith("ptlflow:") else "cpu")
    est = make_estimator(spec, ckpt, device, root=root)
    attrs = {
        "estimator": est.name, "ckpt_sha256": est.ckpt_sha256, "dataset": ds["name"], "split": split,
        "pairs": pairs, "image_size": [h, w], "stored_size": [sh, sw], "scale": scale, "dtype": dtype,
        "units": "pixels at stored_size",
    }
    if out.is_file():
        expect_flow_store(out)  # an existing file of another kind is never overwritten silently
        stored = read_attrs(out)
        if bad := mismatched(stored, attrs):
            raise EtcError(f"{out} exists with other settings ({', '.join(f'{k}={stored.get(k)!r}' for k in bad)}); "
                           f"delete it or choose another --out")
        return {"pairs": len(todo), "done": len(todo), "computed": 0, "skipped": "complete", "out": str(out),
                "pairs_per_s": float("nan"), "seconds": 0.0}

    store = StoreWriter(out, attrs, compression)
    pending = [(c, a, b) for c, a, b in todo if not store.has(c.name, a, b)]
    already = len(todo) - len(pending)
    if limit is not None:
        pending = pending[:limit]
    try:  # before hours of estimation, not when the disk is full (a partial store resumes)
        check_free_disk(out, flow_store_bytes(len(pending), (sh, sw), dtype), f"precompute-flow: {len(pending)} pairs at "
                        f"{sh}×{sw} {dtype}", "free space, choose another --out, lower flow.scale or use float16")
    except EtcError:
        store.close()
        if already == 0:
            store.partial.unlink(missing_ok=True)  # nothing computed: leave nothing behind
        raise
    batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
    torch_dtype = torch.float16 if dtype == "float16" else torch.float32

    def check_size(path, img):
        if img.shape[:2] != (h, w):
            raise EtcError(f"{path} is {img.shape[0]}×{img.shape[1]}, other frames of split '{split}' are "
                           f"{h}×{w}; one store holds one resolution (run `etc check-data`)")
        return img

    def load(batch, previous):  # runs in the prefetch thread; neighbouring pairs share frames
        if not est.uses_images:
            return {}
        paths = {c.frames[i].image for c, a, b in batch for i in (a, b)}
        return {p: previous[p] if p in previous else check_size(p, read_image(p)) for p in paths}

    bar = tqdm(total=len(todo), initial=already, desc=f"flow {split} ({est.name})", unit="pair",
               disable=not progress or None, smoothing=0.1)
    writer = _Writer(store, (sh, sw), torch_dtype, bar.update)
    writer.start()
    t0 = time.perf_counter()
    finished = False
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="flow-frames") as pool:
            nxt = pool.submit(load, batches[0], {}) if batches else None
            for i, batch in enumerate(batches):
                images = nxt.result()
                nxt = pool.submit(load, batches[i + 1], images) if i + 1 < len(batches) else None
                writer.put((batch, *est.pair_flows(batch, images.__getitem__)))
        writer.close()
        elapsed = time.perf_counter() - t0
        finished = all(store.has(c.name, a, b) for c, a, b in todo)
        if finished:
            store.finish()
    finally:
        writer.stop()  # after an error or Ctrl-C too: queued pairs are whole results
        store.close()
        bar.close()
    computed = writer.written
    return {"pairs": len(todo), "done": already + computed, "computed": computed,
            "seconds": elapsed, "pairs_per_s": computed / elapsed if elapsed > 0 else float("nan"),
            "out": str(out if finished else store.partial)}
