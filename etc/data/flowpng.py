"""Flow as KITTI 16-bit PNG: R = u·64 + 2¹⁵, G = v·64 + 2¹⁵, B = 1 where valid.

Lossless for vectors on the 1/64-pixel grid (the synthetic set's integer motion is exact),
deterministic bytes, and readable by any KITTI tool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from etc.core.errors import EtcError
from etc.core.io import read_png, write_png


def encode_flow(flow: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """H×W×2 flow (pixels) and H×W valid mask → H×W×3 uint16 in RGB order (KITTI)."""
    if flow.ndim != 3 or flow.shape[2] != 2 or valid.shape != flow.shape[:2]:
        raise ValueError(f"flow must be H×W×2 and valid H×W, got {flow.shape} and {valid.shape}")
    q = np.round(flow.astype(np.float64) * 64.0 + 32768.0)
    if not np.isfinite(q).all() or q.min() < 0 or q.max() > 65535:
        raise ValueError("flow vectors must be finite and within ±512 px to be stored in a KITTI PNG")
    out = np.empty((*flow.shape[:2], 3), np.uint16)
    out[..., 0], out[..., 1] = q[..., 0], q[..., 1]
    out[..., 2] = valid.astype(np.uint16)
    return out


def write_flow_png(path: str | Path, flow: np.ndarray, valid: np.ndarray) -> None:
    write_png(path, encode_flow(flow, valid))


def read_flow_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(H×W×2 float32 flow in pixels, H×W bool valid)."""
    raw = read_png(path)
    if raw is None or raw.ndim != 3 or raw.dtype != np.uint16:
        raise EtcError(f"cannot read flow PNG {path} (missing, corrupt or not 16-bit 3-channel)")
    flow = (raw[..., :2].astype(np.float32) - 32768.0) / 64.0
    return flow, raw[..., 2] > 0
