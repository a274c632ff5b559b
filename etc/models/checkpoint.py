"""Checkpoints: written atomically, read with ``weights_only=True``, errors that say what's wrong."""

from __future__ import annotations

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
