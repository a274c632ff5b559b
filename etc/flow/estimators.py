"""Flow estimators by name: ``dis`` (OpenCV DIS, no weights), ``gt`` (the synthetic set's exact
flow) and ``ptlflow:<model>`` (any ptlflow model, weights from a local checkpoint only).

Every estimator maps a batch of frame pairs to flows ``F_{a→b}`` (N×2×H×W, pixels, in frame a)
following the project's convention (etc.flow.warp).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import torch

from etc.errors import EtcError

log = logging.getLogger(__name__)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class DISEstimator:
    """OpenCV's Dense Inverse Search: no weights, fast enough to be the CPU default."""

    name = "dis"
    ckpt_sha256 = ""

    def __init__(self, preset: str = "medium"):
        import cv2

        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self.dis = cv2.DISOpticalFlow_create(presets[preset])

    def __call__(self, img_a: list[np.ndarray], img_b: list[np.ndarray]) -> torch.Tensor:
        import cv2

        flows = []
        for a, b in zip(img_a, img_b, strict=True):
            ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
            flows.append(torch.from_numpy(self.dis.calc(ga, gb, None)).permute(2, 0, 1))
        return torch.stack(flows).float()


class PtlflowEstimator:
    """A ptlflow model with weights from a local checkpoint (never downloaded at run time).

    ptlflow 0.4.2 builds random weights silently without a checkpoint, and takes a
    ``ckpt_path`` that is not an existing file for the name of published weights to download;
    so the file is checked here and its state dict loaded by us (strict, weights_only). Frames
    go in as BGR in [0, 1] (what the published weights were trained on), padded to the
    model's output stride.
    """

    def __init__(self, model_name: str, ckpt: str | Path | None, device: str | torch.device = "cpu"):
        with contextlib.redirect_stdout(io.StringIO()):
            import ptlflow
        names = ptlflow.get_model_names()
        if model_name not in names:
            raise EtcError(f"unknown ptlflow model '{model_name}'; ptlflow lists: {', '.join(names)}")
        if ckpt is None or not Path(ckpt).is_file():
            where = f" ({ckpt} does not exist)" if ckpt else ""
            raise EtcError(
                f"ptlflow:{model_name} needs a local checkpoint{where}: download the weights of "
                f"'{model_name}' (e.g. the 'things' checkpoint from the ptlflow releases on GitHub) on a "
                f"machine with internet, put the .ckpt file under weights/ and set flow.ckpt (or --ckpt) "
                f"to its path. Weights are never downloaded at run time."
            )
        with contextlib.redirect_stdout(io.StringIO()):
            model = ptlflow.get_model(model_name)
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise EtcError(f"{ckpt} is not a ptlflow checkpoint (expected a dict with 'state_dict')")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise EtcError(f"{ckpt} does not fit ptlflow model '{model_name}' ({str(exc).splitlines()[0][:200]}); "
                           f"use the checkpoint made for that architecture") from None
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.stride = int(getattr(model, "output_stride", 8) or 8)
        self.name = f"ptlflow:{model_name}"
        self.ckpt_sha256 = sha256(ckpt)

    @torch.no_grad()
    def __call__(self, img_a: list[np.ndarray], img_b: list[np.ndarray]) -> torch.Tensor:
        to_t = lambda im: torch.from_numpy(np.ascontiguousarray(im[..., ::-1])).permute(2, 0, 1).float() / 255.0  # noqa: E731
        a = torch.stack([to_t(im) for im in img_a])
        b = torch.stack([to_t(im) for im in img_b])
        images = torch.stack([a, b], dim=1).to(self.device)  # N×2×3×H×W, BGR in [0, 1]
        h, w = images.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            n = images.shape[0]
            flat = torch.nn.functional.pad(images.flatten(0, 1), (0, pw, 0, ph), mode="replicate")
            images = flat.view(n, 2, 3, h + ph, w + pw)
        flows = self.model({"images": images})["flows"][:, 0]
        return flows[..., :h, :w].float().cpu()


def make_estimator(name: str, ckpt: str | Path | None = None, device: str | torch.device = "cpu", dis_preset: str = "medium"):
    """The estimator registered under ``name`` (``gt`` is handled by the precompute stage)."""
    if name == "dis":
        return DISEstimator(dis_preset)
    if name.startswith("ptlflow:"):
        return PtlflowEstimator(name.split(":", 1)[1], ckpt, device)
    raise EtcError(f"unknown flow estimator '{name}'; use dis, gt or ptlflow:<model name>")
