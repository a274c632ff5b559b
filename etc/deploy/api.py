"""The Python API: a checkpoint of ``etc train`` as an object that segments frames and videos.

::

    import etc

    seg = etc.load("student.pt")            # the checkpoint alone: no config, no dataset
    labels = seg.labels(frames)             # N×H×W uint8 train ids of RGB uint8 H×W×3 frames
    probs = seg.scores(frames)              # N×K×H×W float32 softmax probabilities
    rgb = seg.overlay(frames[0], labels[0]) # the class colours over the frame
    seg.classes, seg.palette, seg.frame_size
    seg.video("drive.mp4", "drive.seg.mp4") # what `etc segment-video` does, with its CSV

Nothing here is a second implementation: frames are normalised by etc.data.feed.to_network
and labelled by the predictor of ``etc infer`` (etc.infer.predict.make_predictor) with the
execution options of the ``infer`` config section, so ``labels`` equals the labels ``etc infer``
writes for the same frames under the same section; ``video`` is etc.deploy.segment_video. The
classes, palette and training frame size are the checkpoint's own
(etc.models.checkpoint.checkpoint_meta).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from etc.core.errors import EtcError

Frames = np.ndarray | Sequence[np.ndarray]  # N×H×W×3 uint8 RGB, a list of H×W×3, or one H×W×3 frame


def load(path: str | Path, device: str | None = None, *, config: str | Path | dict | None = None,
         flip: bool | None = None, batch_size: int | None = None) -> Segmenter:
    """The network of checkpoint ``path`` ready to segment frames.

    ``device``: ``cpu``, ``cuda``, ``cuda:1`` …; None: CUDA when present, else the CPU (as
    every ``etc`` command). ``config``: a config file or mapping whose ``infer`` section (batch
    size, flip, channels_last, bf16, compile, fused labels) is used — the same section makes
    ``etc infer`` give the same labels; None: the schema's defaults, whatever ./config.yaml
    holds (a program should not change with the folder it runs in). A checkpoint written
    before checkpoints carried their classes needs the config's ``dataset.name``/``dataset.root``
    (for ``folder``). ``flip``/``batch_size`` override ``infer.flip``/``infer.batch_size``.
    """
    from etc.core.config import deep_merge, load_config
    from etc.core.device import pick_device
    from etc.core.execution import resolve_execution
    from etc.infer.predict import load_inference_model, make_predictor
    from etc.models.checkpoint import checkpoint_meta

    overrides = {k: v for k, v in (("flip", flip), ("batch_size", batch_size)) if v is not None}
    if isinstance(config, dict):
        cfg = load_config(None, deep_merge(config, {"infer": overrides}) if overrides else config)
    else:
        cfg = load_config(config, {"infer": overrides} if overrides else None)
    dev = pick_device(device)
    ex = resolve_execution(cfg["infer"], dev, "infer")
    ex.apply(dev)
    model, state = load_inference_model(path, dev, ex, None)
    meta = checkpoint_meta(state, path, dataset=cfg["dataset"]["name"])
    predictor = make_predictor(model, bool(cfg["infer"]["flip"]), ex.bf16, ex.compile, ex.fused_labels)
    return Segmenter(Path(path), model, state, meta, dev, ex, cfg, predictor)


class Segmenter:
    """A trained network with what it needs to be used: its classes and colours, its input
    normalisation and the execution options of ``etc infer``. Made by :func:`load`."""

    def __init__(self, path: Path, model: torch.nn.Module, state: dict, meta, device: torch.device,
                 execution, config: dict, predictor):
        self.path, self.model, self.device, self.execution = path, model, device, execution
        self.meta = meta  # etc.models.checkpoint.CheckpointMeta
        self.config = config
        self.run: str | None = state.get("run")
        self.spec: dict = dict(state["spec"])
        self._predict = predictor
        self._flip = bool(config["infer"]["flip"])
        self._batch_size = int(config["infer"]["batch_size"])

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names by train id: ``labels`` value i is ``classes[i]``."""
        return self.meta.classes

    @property
    def palette(self) -> np.ndarray:
        """K×3 uint8 RGB colour of each class (the overlays')."""
        return np.asarray(self.meta.palette, dtype=np.uint8).reshape(-1, 3)

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) of the frames it was trained on (None for a checkpoint that does not record
        it). Frames of any size are segmented at their own size, as ``etc infer`` does; near
        this size the network sees objects at the scale it learnt."""
        return self.meta.frame_size

    @property
    def ignore_index(self) -> int:
        """The label value of pixels without a class in label maps (never predicted)."""
        return self.meta.ignore_index

    @property
    def dataset(self) -> str | None:
        """The dataset it was trained on."""
        return self.meta.dataset

    def __repr__(self) -> str:
        size = "×".join(map(str, self.frame_size)) if self.frame_size else "unknown size"
        return (f"Segmenter({str(self.path)!r}, run={self.run!r}, {len(self.classes)} classes of "
                f"{self.dataset}, trained at {size}, on {self.device})")

    def labels(self, frames: Frames) -> np.ndarray:
        """N×H×W uint8 train ids (index into :attr:`classes`) of ``frames``: RGB uint8, an
        N×H×W×3 array, a list of H×W×3 arrays of one size, or one H×W×3 frame (N = 1).
        Channels are red, green, blue: convert OpenCV's BGR first (``img[..., ::-1]``).

        Each frame is segmented alone (no state between frames or calls), in batches of
        ``infer.batch_size``, by the predictor of ``etc infer``: the same labels as ``etc infer``
        on the same frames under the same ``infer`` section."""
        images = _as_frames(frames)
        out = np.empty((len(images), *images[0].shape[:2]), np.uint8)
        for lo, x in self._batches(images):
            out[lo:lo + len(x)] = self._predict(x).to(torch.uint8).cpu().numpy()
        return out

    def scores(self, frames: Frames) -> np.ndarray:
        """N×K×H×W float32 softmax probabilities of each class at each pixel of ``frames``
        (as :meth:`labels` takes them; with ``infer.flip`` the mean over the frame and its
        mirror image), for thresholds, uncertainty or ensembling. Their argmax is :meth:`labels`
        up to float rounding at near-ties. K×H×W floats per frame: mind the memory for long
        lists."""
        from etc.infer.predict import predict_probabilities

        images = _as_frames(frames)
        out = np.empty((len(images), len(self.classes), *images[0].shape[:2]), np.float32)
        for lo, x in self._batches(images):
            out[lo:lo + len(x)] = predict_probabilities(self.model, x, self._flip, self.execution.bf16).cpu().numpy()
        return out

    def _batches(self, images: list[np.ndarray]):
        """(first index, the network's input) of each ``infer.batch_size`` run of ``images``,
        normalised on the device as `etc infer` does (etc.data.feed.to_network)."""
        from etc.data.feed import to_network

        for lo in range(0, len(images), self._batch_size):
            batch = torch.from_numpy(np.stack(images[lo:lo + self._batch_size]))
            yield lo, to_network(batch, self.device, self.execution.channels_last)

    def overlay(self, frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """``frame`` (H×W×3 uint8 RGB) with the colour of each pixel's class (``labels``: H×W
        train ids, e.g. one of :meth:`labels`) blended in at weight ``alpha`` (0: the frame,
        1: the colours alone); pixels of :attr:`ignore_index` are darkened. Returns H×W×3 uint8."""
        from etc.deploy.segment_video import overlay

        (img,) = _as_frames(frame)
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise EtcError(f"labels must be one H×W map of integer train ids, got {labels.dtype} of shape "
                           f"{labels.shape}")
        if labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
            raise EtcError("labels must be train ids in 0..255")
        return overlay(img, labels.astype(np.uint8, copy=False), self.palette, float(alpha))

    def video(self, source: str | Path | int, out: str | Path | None = None, *,
              csv_path: str | Path | None = None, labels_out: str | Path | None = None, flicker: bool = False,
              estimator: str | None = "dis", size: tuple[int, int] | None = None, fps: float | None = None,
              max_frames: int | None = None, progress: bool = False) -> dict[str, Any]:
        """Segment a video file, a folder of numbered frames or a camera index (``0``) and write
        the overlay video ``out`` (default: beside the source, ``<name>.seg.mp4``; a camera's
        in the current folder), its per-frame CSV and optionally the labels — exactly what
        ``etc segment-video`` does (etc.deploy.segment_video.segment_video, whose docstring
        lists the options; ``estimator`` None: no flow, no flicker figures). Returns frames,
        frames/s, the flicker share and the paths written."""
        from etc.deploy.segment_video import segment_video

        source = str(source)
        if out is None:
            path = Path(source)
            out = Path(f"camera{source}.seg.mp4") if source.isdigit() and not path.exists() \
                else path.parent / f"{path.stem if path.is_file() else path.name}.seg.mp4"
        return segment_video(self.config, source, self.path, out, csv_path=csv_path, labels_out=labels_out,
                             flicker=flicker, estimator=estimator, size=size, fps=fps, max_frames=max_frames,
                             device=str(self.device), progress=progress)


def _as_frames(frames: Frames) -> list[np.ndarray]:
    """``frames`` as a non-empty list of H×W×3 uint8 arrays of one size; anything else is an
    EtcError saying what was given."""
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4:
            raise EtcError(f"frames must be RGB uint8: N×H×W×3, a list of H×W×3 or one H×W×3; got an array "
                           f"of shape {frames.shape}")
        frames = list(frames)
    elif isinstance(frames, (str, Path)):
        raise EtcError(f"frames are arrays, not a path ({frames}); for a video or a folder use .video()")
    images = []
    for i, img in enumerate(frames):
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise EtcError(f"frame {i} is {img.dtype} of shape {img.shape}; frames are RGB uint8 H×W×3 "
                           f"(drop an alpha channel, convert other types to uint8 0..255)")
        if images and img.shape != images[0].shape:
            raise EtcError(f"frame {i} is {img.shape[1]}×{img.shape[0]}, frame 0 {images[0].shape[1]}×"
                           f"{images[0].shape[0]}; give frames of one size per call")
        images.append(img)
    if not images:
        raise EtcError("no frames given")
    return images
