"""``etc export``: the inference network of a checkpoint as TorchScript or ONNX, with its
parity against eager PyTorch measured on real frames.

What is exported is what ``etc infer`` runs: the network in eval mode without its auxiliary
head (training only), taking the normalised B×3×H×W float batch (ImageNet mean and std,
etc.data.pairs) and returning the B×K×H×W logits at the input resolution; the label map is
their argmax over K. Without a size the export is dynamic in batch, height and width, and the
parity is also measured at a second size that needs other padding, because a traced graph can
hold a shape frozen at the example's size (DeepLabV3+ does): an export that disagrees with
eager is refused, never written.

Without frames of its own the parity is checked on the first validation clip of the config's
dataset, and where that dataset is not present, on deterministic generated frames (the
synthetic scene generator's) at the checkpoint's training frame size (its meta,
etc.models.checkpoint.checkpoint_meta): exporting needs the checkpoint alone.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from etc.core.errors import EtcError

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
ONNX_EXTRA = "pip install -e '.[onnx]'"
# An export agrees with eager when at most this share of labels differs (near-ties of float
# rounding) and no logit is further off than this, relative to the logits' magnitude. Rounding
# stays far below it (TorchScript 0, ONNX Runtime 2e-7 on PSPNet at 48×96); PSPNet's dynamic
# ONNX graph is 9e-3 off at 36×72, where the pyramid's bins do not divide the feature map (the
# exported adaptive pooling is another computation there): refused, fixed sizes are exact.
MAX_LABEL_DISAGREEMENT = 1e-3
MAX_RELATIVE_LOGIT_DIFF = 1e-3
# Generated parity frames of a checkpoint that records no training frame size (written before
# checkpoints carried it, of a dataset whose spec fixes none).
GENERATED_SIZE = (256, 512)
GENERATED_SEED = 0


class GeneratedFrames(list):
    """No frames: what :func:`parity_frames` returns when neither ``--frames`` nor the config's
    dataset gives any. :func:`export_model` then generates ``count`` deterministic frames at the
    checkpoint's training frame size; ``reason`` says why (the dataset's error)."""

    def __init__(self, count: int, reason: str):
        super().__init__()
        self.count, self.reason = int(count), reason


class InferenceNet(torch.nn.Module):
    """images → logits of an etc network, without its auxiliary head."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        if getattr(model, "aux", None) is not None:
            model.aux = None  # only ever called in training
        self.model = model
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)["logits"]


def export_model(model_ckpt: str | Path, out: str | Path, fmt: str, *, frames: list[np.ndarray] | None,
                 size: tuple[int, int] | None = None) -> dict:
    """Export ``model_ckpt`` to ``out`` in ``fmt``; ``frames`` (H×W×3 uint8 RGB, at least one)
    are the real frames the parity is measured on, ``size`` (H, W) fixes the input size (None:
    dynamic). Returns the parity figures per checked size.

    ``frames`` None or a :class:`GeneratedFrames`: the parity is measured on deterministic
    generated frames (4, or its count) at ``size``, else at the checkpoint's training frame
    size; each parity entry then says ``generated: True`` and a warning is logged."""
    from etc.core.alloc import allocation, check_frame_memory
    from etc.core.io import atomic_path, output_folder
    from etc.models.checkpoint import checkpoint_meta, load_model_from_checkpoint

    if fmt not in FORMATS:
        raise EtcError(f"unknown export format '{fmt}'; use {' or '.join(FORMATS)}")
    if fmt == "onnx":
        missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise EtcError(f"ONNX export needs {' and '.join(missing)}, not installed: {ONNX_EXTRA}")
    generated = frames is None or isinstance(frames, GeneratedFrames)
    if not frames and not generated:
        raise EtcError("no frames to check the export's parity on; give --frames a video or a folder of frames")
    out = output_folder(out)
    if size is not None:  # before the frames are generated or resized to it
        check_frame_memory(size, 2, "--height/--width")
    model, state = load_model_from_checkpoint(model_ckpt)
    net = InferenceNet(model)
    name = f"{state['spec'].get('arch', 'pspnet')} on {state['spec'].get('backbone')}"
    if generated:
        trained = checkpoint_meta(state, model_ckpt, classes=False).frame_size
        at = tuple(size or trained or GENERATED_SIZE)
        why = getattr(frames, "reason", None)
        frames = generated_frames(getattr(frames, "count", 4), at)
        log.warning("%sthe parity of the export is checked on %d generated frames at %d×%d (%s); give --frames "
                    "to check it on real ones", f"{why}: " if why else "", len(frames), at[0], at[1],
                    "the size given" if size else "the checkpoint's training frame size" if trained
                    else "the checkpoint records no training frame size")
    first = size or frames[0].shape[:2]
    sizes = [tuple(first)] if size else [tuple(first), _second_size(first)]
    fix = "give a smaller --height/--width" if size else "give --height/--width or smaller --frames"
    with allocation(f"the parity check at {first[0]}×{first[1]}", fix):
        batches = {s: _batch(frames, s) for s in sizes}
        with atomic_path(out) as tmp:
            example = batches[sizes[0]][:2].repeat(2 // min(2, len(frames)), 1, 1, 1)  # a batch of 1 would freeze it
            run = _export(net, example, tmp, fmt, dynamic=size is None, name=name)
            parity = {f"{h}x{w}": {**_parity(net, run, batches[(h, w)], name, fmt), "generated": generated}
                      for h, w in sizes}
    return {"out": str(out), "format": fmt, "model": name, "dynamic": size is None, "parity": parity,
            "num_classes": int(state["num_classes"]), "dataset": state.get("dataset")}


def generated_frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` frames of one clip of the synthetic scene generator at ``size`` (H, W), the
    same for the same arguments: driving scenes with edges and textures, not noise, so that the
    labels compared have boundaries and near-ties as real frames do."""
    from etc.data.synthetic import render_clip

    images = render_clip(np.random.default_rng(GENERATED_SEED), int(count), int(size[0]), int(size[1]))[0]
    return [np.ascontiguousarray(np.round(img * 255.0).astype(np.uint8)) for img in images]


def _second_size(size) -> tuple[int, int]:
    """A smaller size that no stride of 16 or 32 divides (other padding than ``size``)."""
    def side(n):
        m = max(36, (3 * int(n)) // 4)
        return m + 4 if m % 16 == 0 else m
    return side(size[0]), side(size[1])


def _batch(frames, size) -> torch.Tensor:
    import cv2

    from etc.data.pairs import images_to_batch

    sized = [f if f.shape[:2] == tuple(size) else cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA)
             for f in frames]
    return images_to_batch(sized, channels_last=False)


def _export(net, example: torch.Tensor, path: Path, fmt: str, dynamic: bool, name: str):
    """Write the export to ``path``; returns images → logits (numpy) through it."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's warnings are what the parity check measures
            if fmt == "torchscript":
                traced = torch.jit.trace(net, example, check_trace=False)
                torch.jit.save(traced, str(path))
                loaded = torch.jit.load(str(path))
                return lambda x: loaded(x).numpy()
            # the dynamo exporter: the TorchScript one rejects PSPNet's adaptive pooling at an unknown size
            auto = torch.export.Dim.AUTO
            axes = {0: auto, 2: auto, 3: auto} if dynamic else {0: auto}
            torch.onnx.export(net, (example,), str(path), input_names=["images"], output_names=["logits"],
                              dynamic_shapes=(axes,), dynamo=True, verbose=False)
    except EtcError:
        raise
    except Exception as exc:  # the exporters raise many types for an operation they cannot express
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EtcError(f"{name} cannot be exported to {fmt}: {first}") from None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x.numpy()})[0]


def _parity(net, run, batch: torch.Tensor, name: str, fmt: str) -> dict:
    """Max |logit difference| and the share of identical labels, export against eager."""
    h, w = batch.shape[-2:]
    with torch.no_grad():
        eager = net(batch).numpy()
    try:
        with torch.no_grad():
            exported = run(batch)
    except Exception as exc:  # a graph frozen at another size fails here
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EtcError(f"{name} exported to {fmt} does not run at {h}×{w} ({first}); export it at a fixed "
                       f"size with --height/--width") from None
    if exported.shape != eager.shape:
        raise EtcError(f"{name} exported to {fmt} returns {exported.shape} at {h}×{w}, eager {eager.shape}; "
                       f"export it at a fixed size with --height/--width")
    diff = float(np.abs(exported - eager).max())
    same = float((exported.argmax(1) == eager.argmax(1)).mean())
    scale = 1.0 + float(np.abs(eager).max())
    if same < 1 - MAX_LABEL_DISAGREEMENT or diff > MAX_RELATIVE_LOGIT_DIFF * scale:
        raise EtcError(f"{name} exported to {fmt} disagrees with eager PyTorch at {h}×{w} (max |logit "
                       f"difference| {diff:.3g}, {100 * same:.2f} % identical labels); not written — export "
                       f"at a fixed size with --height/--width, or keep eager for this architecture")
    return {"frames": int(batch.shape[0]), "max_abs_logit_diff": diff, "identical_labels": same}


def parity_frames(source: str | Path | None, config: dict, n: int) -> list[np.ndarray]:
    """The first ``n`` frames of ``source`` (a video or a folder of frames), or by default of
    the first clip of the config's validation split; where the dataset's root is not here, a
    :class:`GeneratedFrames` of ``n``, which :func:`export_model`
    generates at the checkpoint's training frame size."""
    if source is not None:
        from etc.deploy.segment_video import FrameSource

        return list(FrameSource(source, max_frames=n))
    from etc.data.clips import list_clips, read_image

    ds = config["dataset"]
    if not Path(ds["root"]).is_dir():  # a model away from its data; a broken tree still fails
        return GeneratedFrames(n, f"no dataset {ds['name']} at {ds['root']}")
    clips = list_clips(ds["name"], ds["root"], ds["val_split"], strict=False)
    if not clips:
        raise EtcError(f"no clips in {ds['root']} split {ds['val_split']} to check the export on; give --frames")
    return [read_image(f.image) for f in clips[0].frames[:n]]
