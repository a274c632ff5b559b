"""``etc segment-video``: a trained model on your own video, a folder of frames or a camera.

Frames stream through: read one batch (``infer.batch_size`` frames), segment it with the
predictor of ``etc infer`` (etc.infer.predict.make_predictor, the same execution options, so the labels
are the ones ``etc infer`` writes for the same frames), measure each frame's flicker against
the previous one along the flow, write the overlay, the CSV row and the labels, and forget the
batch: memory does not grow with the video's length.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from etc.core.errors import EtcError
from etc.core.io import check_video_suffix

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
OVERLAY_ALPHA = 0.55  # the class colours' weight in the video's overlay


class FrameSource:
    """RGB uint8 frames of a video file, a folder of numbered frames or a camera index, in
    order; ``fps`` is the source's rate where it has one, ``length`` its frame count where known."""

    def __init__(self, source: str | Path, max_frames: int | None = None):
        self.source, self.max_frames = str(source), max_frames
        self.fps, self.length = None, None
        path = Path(self.source)
        if self.source.isdigit() and not path.exists():
            self.kind = "camera"
        elif path.is_dir():
            from etc.data.framedir import numbered_frames

            self.kind, self.paths = "folder", list(numbered_frames(path).values())
            self.length = len(self.paths)
        elif path.is_file():
            self.kind = "video"
            self._open_video(path)
        else:
            raise EtcError(f"input {self.source} not found: give a video file, a folder of frames or a camera index")
        if max_frames is not None:
            self.length = max_frames if self.length is None else min(self.length, max_frames)

    def check_sizes(self) -> None:
        """Refuse a folder whose frames are not all of one size (read from the files' headers,
        before anything is segmented): the error names the first frame of another size than
        the first frame, and that size."""
        if self.kind != "folder" or not self.paths:
            return
        from etc.data.decode import image_size

        paths = self.paths[: self.max_frames] if self.max_frames is not None else self.paths
        first = image_size(paths[0])
        for path in paths[1:]:
            h, w = image_size(path)
            if (h, w) != first:
                raise EtcError(f"frame {path} is {w}×{h}, the frames before it {first[1]}×{first[0]}: the frames "
                               f"of a folder must share one size; pass --height/--width to resize every frame")

    def _open_video(self, path: Path) -> None:
        import imageio.v2 as imageio

        try:
            self.reader = imageio.get_reader(str(path), format="FFMPEG")
            meta = self.reader.get_meta_data()
        except Exception as exc:  # imageio/ffmpeg raise several types for a file that is not a video
            raise EtcError(f"{path} is not a video ffmpeg can read ({type(exc).__name__}); give an "
                           f"{', '.join(VIDEO_SUFFIXES)} file or a folder of frames") from None
        self.fps = float(meta.get("fps") or 0) or None
        duration = float(meta.get("duration") or 0)  # the progress bar's total: counting would decode it all
        self.length = round(duration * self.fps) if self.fps and 0 < duration < float("inf") else None

    def __iter__(self) -> Iterator[np.ndarray]:
        for i, frame in enumerate(self._frames()):
            if self.max_frames is not None and i >= self.max_frames:
                return
            yield frame

    def _frames(self) -> Iterator[np.ndarray]:
        if self.kind == "folder":
            from etc.data.decode import read_image

            for p in self.paths:
                yield read_image(p)
        elif self.kind == "video":
            try:
                for frame in self.reader:
                    yield np.ascontiguousarray(frame[..., :3])
            finally:
                self.reader.close()
        else:
            yield from self._camera()

    def _camera(self) -> Iterator[np.ndarray]:
        import cv2

        cam = cv2.VideoCapture(int(self.source))
        if not cam.isOpened():
            raise EtcError(f"camera {self.source} cannot be opened; check the index (0 is the first camera)")
        self.fps = cam.get(cv2.CAP_PROP_FPS) or None
        try:
            while True:
                ok, bgr = cam.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cam.release()


def segment_video(config: dict, source: str | Path, model_ckpt: str | Path, out: str | Path, *,
                  csv_path: str | Path | None = None, labels_out: str | Path | None = None,
                  flicker: bool = False, estimator: str | None = "dis", size: tuple[int, int] | None = None,
                  fps: float | None = None, max_frames: int | None = None, device: str | None = None,
                  progress: bool = True) -> dict:
    """Segment every frame of ``source`` and write the overlay video ``out`` (beside it the
    flicker map with ``flicker``), the per-frame CSV ``csv_path`` (default: OUT with .csv) and
    the labels ``labels_out`` (a folder of PNGs, or one ``.h5``). ``estimator`` None: no flow,
    no flicker figures. Returns frames, frames/s, the flicker share and the output size.

    The class names and colours are the checkpoint's own (etc.models.checkpoint.checkpoint_meta):
    no dataset is needed, and of the config only the ``infer`` section and ``report.fps`` are
    read (and ``dataset.name``/``dataset.root`` for a checkpoint written before checkpoints
    carried their classes). Refused before anything is read: ``out`` without one of the
    suffixes the video writer takes (etc.core.io.check_video_suffix), and (without ``size``) a folder whose frames are not all of one size."""
    from tqdm import tqdm

    from etc.core.alloc import allocation, check_frame_memory
    from etc.core.device import pick_device
    from etc.core.execution import resolve_execution
    from etc.core.io import atomic_path, output_folder
    from etc.infer.predict import load_inference_model, make_predictor
    from etc.models.checkpoint import checkpoint_meta

    check_video_suffix(out)
    out = output_folder(out)
    csv_path = Path(csv_path) if csv_path else out.with_suffix(".csv")
    src = FrameSource(source, max_frames)
    if size is None:
        src.check_sizes()
    else:
        check_frame_memory(size, int(config["infer"]["batch_size"]), "--height/--width")
    dev = pick_device(device)
    icfg = config["infer"]
    ex = resolve_execution(icfg, dev, "infer")
    ex.apply(dev)
    model, state = load_inference_model(model_ckpt, dev, ex, None)
    meta = checkpoint_meta(state, model_ckpt, dataset=config["dataset"]["name"])
    dataset, names = meta.dataset, meta.classes
    predict = make_predictor(model, bool(icfg["flip"]), ex.bf16, ex.compile, ex.fused_labels)
    colours = np.asarray(meta.palette, dtype=np.uint8)
    flow = _Flicker(estimator, dev) if estimator else None
    if flicker and flow is None:
        raise EtcError("--flicker needs a flow estimator; drop --flow-estimator none")
    rate = fps or src.fps or float(config["report"]["fps"])
    batch_size = int(icfg["batch_size"])
    totals = {"frames": 0, "seconds": 0.0, "flicker": 0, "compared": 0}
    with ExitStack() as stack:
        # entered first, left last: outputs are removed before the failure is reported
        stack.enter_context(allocation(
            f"frames of {size[0]}×{size[1]}" if size else f"the frames of {source}",
            "give a smaller --height/--width or --batch-size" if size else "give --height/--width or a smaller "
            "--batch-size"))
        video = stack.enter_context(_VideoWriter(out, rate, stack))
        table = stack.enter_context(atomic_path(csv_path)).open("w", newline="")
        stack.callback(table.close)
        rows = csv.writer(table)
        rows.writerow(["frame", "latency_ms", "flicker_pct", *(f"share_{n.replace(' ', '_')}" for n in names)])
        labels_sink = _LabelSink(labels_out, stack, str(model_ckpt), dataset) if labels_out else None
        bar = stack.enter_context(tqdm(total=src.length, desc="segment", unit="frame", disable=not progress or None))
        previous = None  # (image, labels) of the last frame of the previous batch
        try:
            for batch in _batches(src, batch_size, size):
                t0 = time.perf_counter()
                labels = _to_host(predict(_to_network(batch, dev, ex.channels_last)))
                seconds = time.perf_counter() - t0
                maps = flow.maps(batch, labels, previous) if flow else [None] * len(batch)
                for img, lab, fmap in zip(batch, labels, maps, strict=True):
                    share = None
                    if fmap is not None:
                        flick, compared = fmap
                        totals["flicker"] += int(flick.sum())
                        totals["compared"] += int(compared.sum())
                        share = 100.0 * flick.sum() / max(1, compared.sum())
                    counts = np.bincount(lab.ravel(), minlength=len(names))[: len(names)] / lab.size
                    rows.writerow([totals["frames"], f"{1000 * seconds / len(batch):.3f}",
                                   "" if share is None else f"{share:.4f}", *(f"{100 * c:.4f}" for c in counts)])
                    video.append(_compose(img, lab, colours, fmap if flicker else None, flicker))
                    if labels_sink:
                        labels_sink.append(totals["frames"], lab)
                    totals["frames"] += 1
                totals["seconds"] += seconds
                previous = (batch[-1], labels[-1])
                bar.update(len(batch))
        except KeyboardInterrupt:  # a camera runs until stopped: keep what was written
            log.warning("stopped after %d frames", totals["frames"])
        if totals["frames"] == 0:
            raise EtcError(f"{source} yielded no frame; check the input")
    flicker_pct = 100.0 * totals["flicker"] / totals["compared"] if totals["compared"] else None
    return {"frames": totals["frames"], "fps": totals["frames"] / totals["seconds"] if totals["seconds"] else None,
            "flicker_pct": flicker_pct, "size": list(video.size), "out": str(out), "csv": str(csv_path),
            "device": dev.type}


def overlay(img: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """H×W×3 uint8 RGB ``img`` with each pixel's class colour (``colours``: K×3 uint8, train
    id → RGB; ignore and unknown ids black) blended in at weight ``alpha``."""
    from etc.report.plots import colorize

    if not 0.0 <= alpha <= 1.0:
        raise EtcError(f"overlay alpha {alpha} is outside 0..1 (the class colours' weight)")
    if labels.shape != img.shape[:2]:
        raise EtcError(f"labels of {labels.shape[1]}×{labels.shape[0]} do not fit a frame of "
                       f"{img.shape[1]}×{img.shape[0]}")
    keep = round(1.0 - alpha, 12)  # 0.45 for 0.55, not 0.44999…: the overlay's pixels as they always were
    return (keep * img + alpha * colorize(labels, colours)).astype(np.uint8)


def _batches(src: FrameSource, batch_size: int, size: tuple[int, int] | None) -> Iterator[list[np.ndarray]]:
    import cv2

    batch, first = [], None
    for i, img in enumerate(src):
        if size is not None and img.shape[:2] != tuple(size):
            img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        first = first or img.shape[:2]
        if img.shape[:2] != first:
            raise EtcError(f"frame {i} of {src.source} is {img.shape[1]}×{img.shape[0]}, the first "
                           f"{first[1]}×{first[0]}; pass --height/--width to resize every frame")
        batch.append(img)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _to_network(batch: list[np.ndarray], dev: torch.device, channels_last: bool) -> torch.Tensor:
    from etc.data.feed import to_network

    return to_network(torch.from_numpy(np.stack(batch)), dev, channels_last)


def _to_host(pred: torch.Tensor) -> np.ndarray:
    return pred.to(torch.uint8).cpu().numpy()


class _Flicker:
    """Per frame t > 0: (flickering, compared) H×W bool — compared pixels are those whose
    sample of ``warp(P_{t-1}, F_{t→t-1})`` stays in the image and that the forward–backward
    check does not mark occluded; flickering ones differ from that warped label."""

    def __init__(self, spec: str, dev: torch.device):
        from etc.flow.estimators import make_estimator

        if spec.partition(":")[0] == "gt":
            raise EtcError("--flow-estimator gt reads a dataset's exact flow, which a video has not; use dis")
        self.est = make_estimator(spec, device=dev)

    def maps(self, batch, labels, previous):
        from etc.data.label_table import IGNORE
        from etc.flow.estimators import occlusion
        from etc.flow.warp import warp_labels

        imgs = ([previous[0]] if previous else []) + list(batch)
        labs = np.concatenate([previous[1][None], labels]) if previous else labels
        if len(imgs) < 2:
            return [None]
        cur, prev = imgs[1:], imgs[:-1]
        both = self.est(cur + prev, prev + cur).cpu().float()
        fw, bw = both[: len(cur)], both[len(cur):]  # F_{t→t-1}, F_{t-1→t}
        occ = occlusion(fw, bw)[0].numpy()
        warped = warp_labels(torch.from_numpy(labs[:-1].astype(np.int64)), fw).numpy()
        compared = (warped != IGNORE) & ~occ
        flick = compared & (warped != labs[1:])
        maps = list(zip(flick, compared, strict=True))
        return maps if previous else [None, *maps]


FLICKER_RGB, OCCLUDED_RGB = (255, 40, 40), (90, 90, 90)


def _compose(img, lab, colours, fmap, side_by_side: bool) -> np.ndarray:
    """The overlay (and with ``side_by_side`` the flicker map: red flicker, grey not compared)."""
    frame = overlay(img, lab, colours)
    if side_by_side:
        panel = np.zeros_like(img)
        if fmap is not None:
            flick, compared = fmap
            panel[~compared] = OCCLUDED_RGB
            panel[flick] = FLICKER_RGB
        frame = np.concatenate([frame, panel], axis=1)
    h, w = frame.shape[:2]
    return np.ascontiguousarray(frame[: h - h % 2, : w - w % 2])  # H.264 needs even sizes


class _VideoWriter:
    """H.264 (yuv420p: plays in browsers) through imageio's ffmpeg, frame by frame, into a
    temporary file renamed to ``out`` when complete."""

    def __init__(self, out: Path, fps: float, stack: ExitStack):
        from etc.core.io import atomic_path

        self.out, self.fps, self.size = out, fps, (0, 0)
        self.tmp = stack.enter_context(atomic_path(out))
        self.writer = None

    def __enter__(self):
        return self

    def append(self, frame: np.ndarray) -> None:
        import imageio.v2 as imageio

        if self.writer is None:
            self.size = frame.shape[:2]
            self.writer = imageio.get_writer(self.tmp, format="FFMPEG", fps=self.fps, codec="libx264",
                                             pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error")
        self.writer.append_data(frame)

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()


class _LabelSink:
    """Label maps as PNGs ``<folder>/<frame:06d>.png`` or, for a ``.h5`` path, one growing
    T×H×W uint8 dataset ``labels`` (a chunk per frame)."""

    def __init__(self, path: str | Path, stack: ExitStack, ckpt: str, dataset: str):
        self.path = Path(path)
        self.h5 = None
        if self.path.suffix in (".h5", ".hdf5"):
            import h5py

            from etc.core.io import atomic_path

            self.h5 = stack.enter_context(h5py.File(stack.enter_context(atomic_path(self.path)), "w"))
            self.h5.attrs.update({"checkpoint": ckpt, "dataset": dataset})
        else:
            from etc.core.io import output_dir

            output_dir(self.path)

    def append(self, i: int, lab: np.ndarray) -> None:
        if self.h5 is None:
            from etc.core.io import write_png

            write_png(self.path / f"{i:06d}.png", lab)
            return
        if "labels" not in self.h5:
            self.h5.create_dataset("labels", shape=(0, *lab.shape), maxshape=(None, *lab.shape), dtype=np.uint8,
                                   chunks=(1, *lab.shape), compression="lzf")
        d = self.h5["labels"]
        d.resize(i + 1, axis=0)
        d[i] = lab
