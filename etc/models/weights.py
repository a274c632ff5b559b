"""ImageNet weights of a backbone: a local file, or the library's own download when asked for.

A model entry's ``pretrained`` is null (random init), a path to a local state dict (a
``torch.save`` file or a ``.safetensors`` file; nothing is downloaded), or ``imagenet``: timm /
segmentation_models_pytorch fetch the weights from the Hugging Face hub (or its cache in
``$HF_HOME``). Offline, that is a one-line EtcError — never a silently random backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn as nn

from etc.core.errors import EtcError

IMAGENET = "imagenet"
T = TypeVar("T")


def read_state_dict(path: Path) -> dict:
    """A state dict from a torch file (a ``{"state_dict": ...}`` wrapper too) or safetensors."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unreadable file is the user's to replace
        from etc.core.safe_load import load_refusal

        raise EtcError(
            f"backbone weights {path} cannot be read as a state dict of tensors ({load_refusal(exc)}); "
            f"the file must hold only tensors: save it with torch.save(model.state_dict(), path) "
            f"or as .safetensors"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EtcError(f"backbone weights {path} hold a {type(state).__name__}, not a state dict")
    return state


def load_weights(module: nn.Module, path: str | Path, name: str, how: str) -> None:
    """Load ``path`` into ``module`` (the backbone of backbone ``name``), strictly.

    Keys the module does not have (a classifier's ``fc.*``, ``head.*``) are ignored, but every
    tensor of the module must be present with its shape. ``how`` says how to get the file.
    """
    path = Path(path)
    if not path.is_file():
        raise EtcError(
            f"backbone weights {path} (model key 'pretrained') not found; a local file is never "
            f"downloaded: {how}"
        )
    state = read_state_dict(path)
    own = module.state_dict()
    usable = {
        k: v for k, v in state.items() if k in own and getattr(v, "shape", None) == own[k].shape
    }
    missing = [k for k in own if k not in usable]
    if missing:
        raise EtcError(
            f"backbone weights {path} do not fit backbone '{name}': {len(missing)} of {len(own)} "
            f"tensors missing or of another shape (first: {missing[0]}); {how}"
        )
    nn.Module.load_state_dict(module, usable, strict=True)


def fetched(name: str, build: Callable[[], T]) -> T:
    """``build()``, which downloads ImageNet weights through the library; offline → EtcError."""
    try:
        return build()
    except OSError as exc:  # hub/cache misses, DNS and connection errors are all OSErrors
        first = (str(exc).splitlines() or [""])[0][:160]
        raise EtcError(
            f"backbone '{name}' (model key pretrained: imagenet): its ImageNet weights could not "
            f"be fetched ({type(exc).__name__}: {first}); this machine seems offline: run once "
            f"online (they are cached in $HF_HOME) or set pretrained to a local weights file"
        ) from None
