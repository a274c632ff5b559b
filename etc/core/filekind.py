"""What kind of project file a path holds, so that a file given in the wrong place is named for
what it is ("X is a flow store, not predictions") instead of failing inside h5py, torch or
pandas.

Each writer marks its files: flow stores and predictions carry a ``format`` attribute
(``etc-flow/1``, ``etc-predictions/1``), checkpoints are torch zip archives with ``model`` and
``spec`` entries, metrics JSONs are objects with ``miou``. Unmarked HDF5 files whose every
member is a frames × H × W integer dataset count as predictions (older files, other tools).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from etc.core.errors import EtcError

PREDICTIONS_FORMAT = "etc-predictions/1"
FLOW_FORMAT = "etc-flow/1"  # etc.flow.store.FORMAT (that module imports torch)

_MAGIC = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"PK\x03\x04", "a zip archive (a PyTorch checkpoint?)"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x80", "a Python pickle"),
)


def describe(path: str | Path) -> str:
    """A few words on what ``path`` is: one of etc's own kinds where it is one."""
    path = Path(path)
    if path.is_dir():
        return "a folder"
    if not path.exists():
        return "missing"
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not head:
        return "an empty file"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            if magic.startswith(b"\x89HDF"):
                return _hdf5_kind(path)
            return what
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON file"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "binary data of an unknown kind"


def _hdf5_kind(path: Path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            fmt = h5.attrs.get("format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            # without the marker (files of other tools, or older etc): a dataset of label maps
            # (frames × H × W integers) per clip is predictions in all but name
            members = [h5.get(name) for name in h5]
            legacy = bool(members) and all(isinstance(m, h5py.Dataset) and m.ndim == 3 and m.dtype.kind in "iu"
                                           for m in members)
    except OSError:
        return "a damaged or truncated HDF5 file"
    if fmt == FLOW_FORMAT:
        return "a flow store (etc precompute-flow)"
    if fmt == PREDICTIONS_FORMAT or (fmt is None and legacy):
        return "predictions (etc infer)"
    return "an HDF5 file of another program"


def expect_predictions(path: str | Path) -> Path:
    """``path`` if it holds `etc infer` predictions; else an EtcError saying what it holds."""
    path = Path(path)
    if not path.is_file():
        raise EtcError(f"predictions {path} not found; run `etc infer` first")
    what = describe(path)
    if what != "predictions (etc infer)":
        raise EtcError(f"{path} is {what}, not predictions of `etc infer`; give the HDF5 that `etc infer --out` wrote")
    _integer_labels(path)
    return path


def _integer_labels(path: Path) -> None:
    """Refuse predictions whose label maps are not integers (scores or probabilities stored in
    their place): every reader would otherwise compare or index with them."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            for name in h5:
                member = h5.get(name)
                if isinstance(member, h5py.Dataset) and member.dtype.kind not in "iu":
                    raise EtcError(f"predictions {path}: clip {name} holds {member.dtype} values, not class ids; "
                                   f"predictions are integer label maps (uint8, as `etc infer` writes them): "
                                   f"store the argmax, or rerun `etc infer`")
    except OSError:
        return  # damaged: the reader names it


def expect_flow_store(path: str | Path) -> None:
    """An EtcError when ``path`` exists but is not a flow store (the store's own reader checks
    completeness and provenance)."""
    path = Path(path)
    if path.is_file():
        what = describe(path)
        if what != "a flow store (etc precompute-flow)":
            raise EtcError(f"{path} is {what}, not a flow store; give the HDF5 that `etc precompute-flow --out` "
                           f"wrote (as an output: delete it or choose another path)")


def not_a_checkpoint(path: str | Path) -> str | None:
    """What ``path`` is instead, when it is plainly not a checkpoint (an HDF5, image, text…)."""
    what = describe(path)
    return None if what.startswith("a zip archive") or what == "a Python pickle" else what


def read_metrics_json(path: str | Path, dataset: str | None = None) -> dict:
    """A metrics JSON of `etc evaluate`: an object with a numeric (or null) ``miou`` and only
    finite numbers; of ``dataset`` where it records one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise EtcError(f"metrics {path} is {describe(path)}, not a metrics JSON of `etc evaluate`") from None
    except OSError as exc:
        raise EtcError(f"cannot read metrics {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise EtcError(f"metrics {path} is not valid JSON ({exc.msg}, line {exc.lineno}); "
                       f"delete it and rerun `etc evaluate`") from None
    if not isinstance(data, dict) or "miou" not in data:
        got = type(data).__name__ if not isinstance(data, dict) else "an object without 'miou'"
        raise EtcError(f"metrics {path} holds {got}, not a metrics JSON of `etc evaluate`; delete it and rerun `etc evaluate`")
    for key, value in _numbers(data):
        if isinstance(value, str) or (isinstance(value, float) and not math.isfinite(value)):
            raise EtcError(f"metrics {path}: '{key}' is {value!r}, not a number; delete it and rerun `etc evaluate`")
    recorded = data.get("dataset")
    if dataset is not None and recorded is not None and recorded != dataset:
        raise EtcError(f"metrics {path} were measured on {recorded}, the config reads {dataset}; "
                       f"point the report at this dataset's results")
    return data


# keys whose values must be numbers (or null): the scalar metrics the table shows
_NUMERIC = ("miou", "tc", "tc_all", "tc_occ", "flicker", "fps", "params", "gflops")


def _numbers(data: dict):
    for key in _NUMERIC:
        if key in data and data[key] is not None:
            yield key, data[key]
    for key in ("iou_per_class", "tc_per_class", "tc_per_clip"):
        values = data.get(key)
        if isinstance(values, dict):
            for k, v in values.items():
                if v is not None:
                    yield f"{key}.{k}", v


def read_curves_csv(path: str | Path):
    """A training CSV of `etc train --log-csv` (an ``iteration`` column and numbers)."""
    import pandas as pd

    path = Path(path)
    what = describe(path)
    if what != "a text file":
        raise EtcError(f"training curves {path} is {what}, not the CSV of `etc train --log-csv`")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise EtcError(f"training curves {path} cannot be read as CSV ({str(exc).splitlines()[0]})") from None
    if "iteration" not in df.columns:
        raise EtcError(f"training curves {path} has no 'iteration' column; it is not the CSV of `etc train --log-csv`")
    return df
