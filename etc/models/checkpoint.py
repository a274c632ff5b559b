"""Checkpoints: written atomically, read with ``weights_only=True``, errors that say what's wrong."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from etc.core.errors import EtcError
from etc.core.filekind import not_a_checkpoint
from etc.core.io import atomic_path
from etc.core.reads import plain
from etc.core.safe_load import load_refusal


def save_checkpoint(path: str | Path, state: dict) -> None:
    try:
        with atomic_path(path) as tmp:
            torch.save(plain(state), tmp)
    except OSError as exc:  # full disk, folder removed or made read-only mid-run
        raise EtcError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise EtcError(f"checkpoint {path} not found; train it first (`etc train ... --out {path}`)")
    other = not_a_checkpoint(path)
    if other is not None:
        raise EtcError(f"{path} is {other}, not a checkpoint of `etc train`; give the .pt file `etc train --out` wrote")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise EtcError(f"checkpoint {path} is truncated, corrupt or not an etc checkpoint ({load_refusal(exc)}); "
                       f"delete it and retrain") from None
    if not isinstance(state, dict) or "model" not in state or "spec" not in state:
        raise EtcError(f"checkpoint {path} is not an etc checkpoint (no 'model'/'spec' entries)")
    if not isinstance(state["spec"], dict) or not isinstance(state["model"], dict) \
            or not isinstance(state.get("num_classes"), int):
        raise EtcError(f"checkpoint {path} is damaged: its 'spec' and 'model' must be mappings and "
                       f"'num_classes' an integer; delete it and retrain")
    return state


def load_model_from_checkpoint(path: str | Path, map_location="cpu"):
    """Rebuild the network a checkpoint was trained as, with its weights (strict)."""
    from etc.models.registry import build_model

    state = load_checkpoint(path, map_location)
    # the checkpoint holds every weight: never fetch or read the backbone's ImageNet weights
    model = build_model({**state["spec"], "pretrained": None}, state["num_classes"])
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as exc:
        raise EtcError(f"checkpoint {path} does not match its architecture {state['spec']}: "
                       f"{str(exc).splitlines()[0][:300]}") from None
    return model, state


META_KEY = "meta"  # the entry of a checkpoint that makes it usable without its dataset or config
META_VERSION = 1


@dataclass(frozen=True)
class CheckpointMeta:
    """What a network needs around it to be used without its dataset or config: the class of
    each output channel, how to draw it, what its input is and where it came from.

    ``etc train`` stores it under ``state["meta"]`` (:meth:`to_state`); :func:`checkpoint_meta`
    reads it back, or derives it for a checkpoint written before (``stored`` False)."""

    dataset: str | None  # the dataset it was trained on
    classes: tuple[str, ...]  # train id -> class name (the network's output channels, in order)
    palette: tuple[tuple[int, int, int], ...]  # train id -> RGB colour of the overlays
    ignore_index: int  # the label value of pixels without a class (never predicted)
    mean: tuple[float, float, float]  # the input normalisation: (rgb / 255 - mean) / std
    std: tuple[float, float, float]
    frame_size: tuple[int, int] | None  # (H, W) of the frames it was trained on; None: not known
    config_digest: str | None = None  # etc.core.reads.reads_digest of what its training read
    stored: bool = True  # False: derived from the dataset's name (a checkpoint without meta)

    def to_state(self) -> dict:
        """Plain lists, strings and numbers: what ``torch.load(weights_only=True)`` reads back."""
        return {"version": META_VERSION, "dataset": self.dataset, "classes": list(self.classes),
                "palette": [list(c) for c in self.palette], "ignore_index": self.ignore_index,
                "mean": list(self.mean), "std": list(self.std),
                "frame_size": None if self.frame_size is None else list(self.frame_size),
                "config_digest": self.config_digest}


def inference_meta(dataset: str, frame_size: tuple[int, int] | None = None,
                   config_digest: str | None = None) -> CheckpointMeta:
    """The meta of a network trained on ``dataset`` (its class list read now, from the code or,
    for ``folder``, from ROOT/classes.yaml): what ``etc train`` stores in every checkpoint."""
    from etc.data.label_table import IGNORE
    from etc.data.labels import label_table
    from etc.data.pairs import IMAGENET_MEAN, IMAGENET_STD

    table = label_table(dataset)
    return CheckpointMeta(
        dataset=dataset, classes=tuple(table.classes), palette=tuple(tuple(int(v) for v in c) for c in table.palette),
        ignore_index=IGNORE, mean=tuple(IMAGENET_MEAN), std=tuple(IMAGENET_STD),
        frame_size=None if frame_size is None else (int(frame_size[0]), int(frame_size[1])),
        config_digest=config_digest)


def checkpoint_meta(state: dict, path: str | Path = "the checkpoint", *, dataset: str | None = None,
                    classes: bool = True) -> CheckpointMeta:
    """The meta of a checkpoint (``state`` as :func:`load_checkpoint` returns it, read from
    ``path``): the stored one, or for a checkpoint written before checkpoints carried it, the
    one its dataset's name gives today (``dataset``: the name to assume when the checkpoint
    names none, e.g. the config's).

    ``classes`` False: the caller needs no class list (export), so an old checkpoint's is not
    derived and may be empty. A class list that cannot be had — an old ``folder`` checkpoint
    with no root known — or one whose length is not the network's class count is an EtcError
    naming ``path``.
    """
    stored = state.get(META_KEY)
    meta = _stored_meta(stored, path) if stored is not None else _derived_meta(state, path, dataset, classes)
    n = state["num_classes"]
    if (classes or meta.stored) and n != len(meta.classes):
        raise EtcError(f"{path} predicts {n} classes, but its dataset {meta.dataset} has {len(meta.classes)}; "
                       f"the checkpoint belongs to another class list")
    return meta


def _stored_meta(stored, path) -> CheckpointMeta:
    def size(v):
        return None if v is None else (int(v[0]), int(v[1]))

    try:
        if not isinstance(stored, dict):
            raise TypeError(type(stored).__name__)
        palette = tuple(tuple(int(v) for v in c) for c in stored["palette"])
        meta = CheckpointMeta(
            dataset=stored.get("dataset"), classes=tuple(str(c) for c in stored["classes"]), palette=palette,
            ignore_index=int(stored["ignore_index"]), mean=tuple(float(v) for v in stored["mean"]),
            std=tuple(float(v) for v in stored["std"]), frame_size=size(stored.get("frame_size")),
            config_digest=stored.get("config_digest"))
        if len(meta.palette) != len(meta.classes) or any(len(c) != 3 for c in palette) \
                or len(meta.mean) != 3 or len(meta.std) != 3:
            raise ValueError("lengths")
    except (KeyError, TypeError, ValueError, IndexError):
        raise EtcError(f"checkpoint {path} is damaged: its '{META_KEY}' entry needs classes, a palette of one "
                       f"RGB per class, ignore_index, mean and std; delete it and retrain") from None
    from etc.data.pairs import IMAGENET_MEAN, IMAGENET_STD

    if not (_close(meta.mean, IMAGENET_MEAN) and _close(meta.std, IMAGENET_STD)):
        raise EtcError(f"checkpoint {path} expects frames normalised with mean {list(meta.mean)} and std "
                       f"{list(meta.std)}, but this etc normalises with ImageNet's {list(IMAGENET_MEAN)} and "
                       f"{list(IMAGENET_STD)}; use the etc version that trained it")
    return meta


def _close(a, b) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 1e-6 for x, y in zip(a, b, strict=True))


def _derived_meta(state: dict, path, dataset: str | None, classes: bool) -> CheckpointMeta:
    """A checkpoint without meta: classes and palette from its dataset's name as the code (or,
    for ``folder``, the ROOT/classes.yaml of the root known now) defines them."""
    import os

    from etc.core.config import FOLDER_ROOT_ENV
    from etc.data.label_table import IGNORE
    from etc.data.pairs import IMAGENET_MEAN, IMAGENET_STD
    from etc.data.sets import get_spec

    name = state.get("dataset") or dataset
    old = f"checkpoint {path} carries no class list (written before checkpoints held one)"
    if name is None:
        raise EtcError(f"{old} and names no dataset; retrain it, or pass --config naming its dataset")
    size = get_spec(name).frame_size
    if not classes:
        return CheckpointMeta(name, (), (), IGNORE, tuple(IMAGENET_MEAN), tuple(IMAGENET_STD), size, stored=False)
    if name == "folder" and not os.environ.get(FOLDER_ROOT_ENV):
        raise EtcError(f"{old}, and its dataset 'folder' reads the classes from ROOT/classes.yaml, but no root "
                       f"is known; retrain it, or pass --config with dataset.root")
    try:
        meta = inference_meta(name, size)
    except EtcError as exc:
        raise EtcError(f"{old}, and its dataset {name} gives none: {exc}; retrain it") from None
    return replace(meta, stored=False)
