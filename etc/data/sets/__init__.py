"""The dataset registry: one module per dataset in this package, each defining ``SPEC``.

A :class:`DatasetSpec` is everything the pipeline knows about a dataset — how to list its clips,
its classes and label values, where to get it and how its files are named. The CLI's
``--dataset`` choices, the config schema's enum (checked by a test) and ``check-data`` read it,
so adding a dataset is one module here, one preset in ``workflow/configs/`` and one tiny tree
for the shared tests (``tests/test_datasets.py``).

Spec modules import no heavy library at import time (``etc --help`` lists the names).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from etc.core.errors import EtcError
from etc.data.frames import Clip
from etc.data.label_table import LabelTable

Lister = Callable[[Path, str, bool], "list[Clip]"]  # (root, split, strict) -> clips


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    list_clips: Lister  # strict: a gap in a clip is an error naming the file (check-data)
    labels: Callable[[], LabelTable]  # cached; may import the dataset's helper package
    how_to_get: str  # where to get the data and the layout it unpacks to (check-data's messages)
    frame_naming: str  # how frames and labels are named and grouped into clips
    label_convention: str  # what the stored label values mean, and the source of that mapping
    splits: tuple[str, ...] = ("train", "val")  # the splits the data ships with
    exact_flow: bool = False  # the `gt` estimator reads its exact flow (evaluation measures with it)
    every_frame_labelled: bool = False  # keyframe methods are scored on every frame (etc.evaluate.keyframe_score)
    frame_size: tuple[int, int] | None = None  # (H, W) frames are read at; None: from the config (synthetic)


@functools.cache
def registry() -> dict[str, DatasetSpec]:
    """name -> spec, from every module of this package (sorted by name)."""
    specs: dict[str, DatasetSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        spec = importlib.import_module(f"{__name__}.{info.name}").SPEC
        if spec.name in specs:
            raise RuntimeError(f"dataset '{spec.name}' is defined twice (module {info.name})")
        specs[spec.name] = spec
    return specs


def dataset_names() -> tuple[str, ...]:
    return tuple(registry())


def get_spec(name: str) -> DatasetSpec:
    try:
        return registry()[name]
    except KeyError:
        raise EtcError(f"unknown dataset '{name}'; known: {', '.join(dataset_names())}") from None
