"""The flow store: one HDF5 file per split, a group per clip, a group per frame pair.

Pair group ``"{a}_{b}"`` (clip positions) holds ``fw`` = F_{a→b} and ``bw`` = F_{b→a}
(2×h×w, pixels at the stored resolution), ``occ_fw`` / ``occ_bw`` (h×w uint8, 1 = occluded or
leaving the frame), and the attribute ``complete`` written last. The file's attributes record
the estimator, the checkpoint's sha256, image and stored resolution, dtype and the convention.
The reader serves both directions and rescales to any requested size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from etc.errors import EtcError
from etc.flow.warp import resize_flow

FORMAT = "etc-flow/1"
CONVENTION = ("fw[a_b] = F_{a->b}: vectors live in frame a (channel 0 = x, 1 = y), in pixels at the "
              "stored resolution; point p of frame a is at p + F(p) in frame b")


def pair_key(a: int, b: int) -> str:
    return f"{a}_{b}"


class FlowStore:
    """Lazy reader: opens the file on first use in each process (safe in DataLoader workers)."""

    def __init__(self, path: str | Path, expect: dict | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise EtcError(f"flow store {self.path} not found; run `etc precompute-flow ... --out {self.path}`")
        self._h5 = None
        self._pid = None
        attrs = self.attrs()
        if attrs.get("format") != FORMAT or not attrs.get("complete"):
            raise EtcError(f"{self.path} is not a complete etc flow store (format {attrs.get('format')}, "
                           f"complete={attrs.get('complete')}); delete it and rerun precompute-flow")
        for key, value in (expect or {}).items():
            stored = attrs.get(key)
            if isinstance(stored, np.ndarray):
                stored = stored.tolist()
            if value is not None and stored != value:
                raise EtcError(f"{self.path}: attribute '{key}' is {stored!r}, the request needs {value!r}; "
                               f"recompute the flow with the current settings")

    def _file(self):
        import os

        import h5py

        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def attrs(self) -> dict:
        import h5py

        with h5py.File(self.path, "r") as h5:
            return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}

    def read(self, clip: str, a: int, b: int, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(F_{a→b} as 2×H×W float32, occluded H×W bool), resized to ``size`` if given."""
        h5 = self._file()
        if clip not in h5:
            raise EtcError(f"{self.path} has no clip '{clip}'; was it computed for another split or dataset?")
        g = h5[clip]
        if pair_key(a, b) in g:
            pg, d = g[pair_key(a, b)], "fw"
        elif pair_key(b, a) in g:
            pg, d = g[pair_key(b, a)], "bw"
        else:
            raise EtcError(f"{self.path}: clip '{clip}' has no flow for frames {a}→{b}; "
                           f"check dataset.window or recompute with the pairs you need")
        flow = torch.from_numpy(pg[d][()].astype(np.float32))[None]
        occ = torch.from_numpy(pg[f"occ_{d}"][()].astype(np.float32))[None, None]
        if size is not None and tuple(size) != tuple(flow.shape[-2:]):
            flow = resize_flow(flow, tuple(size))
            occ = torch.nn.functional.interpolate(occ, size=tuple(size), mode="nearest")
        return flow[0], occ[0, 0] > 0.5

    def reader(self):
        return self.read

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"] = None
        return state
