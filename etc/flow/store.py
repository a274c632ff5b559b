"""The flow store: one HDF5 file per split, a group per clip, a group per frame pair.

Layout (format ``etc-flow/1``)::

    /                       attrs: format, complete, estimator, ckpt_sha256, dataset, split,
                                   pairs, image_size [H, W], stored_size [h, w], scale, dtype,
                                   compression, convention, units
    /<clip name>/<a>_<b>/   attrs: complete (written after the data is flushed)
        fw      2×h×w  F_{a→b}  (float16 | float32, pixels at stored_size, vectors in frame a)
        bw      2×h×w  F_{b→a}  (vectors in frame b)
        occ_fw  h×w    uint8, 1 = pixel of frame a occluded in b or leaving the frame
        occ_bw  h×w    uint8, the same for frame b

``a``, ``b`` are positions in the clip (``Clip.frames``), ``a < b`` is not required. One chunk
per dataset (a pair is always read whole), compressed. The reader serves both directions and
rescales to any requested size.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from etc.core.errors import EtcError
from etc.core.filekind import FLOW_FORMAT, describe
from etc.flow.warp import resize_flow

log = logging.getLogger(__name__)

FORMAT = FLOW_FORMAT
# what readers rely on (the writer's attrs, less those only recorded for people)
REQUIRED_ATTRS = ("estimator", "dataset", "split", "pairs", "image_size", "stored_size", "scale", "dtype")
CONVENTION = ("fw[a_b] = F_{a->b}: vectors live in frame a (channel 0 = x, 1 = y), in pixels at the "
              "stored resolution; point p of frame a is at p + F(p) in frame b; bw[a_b] = F_{b->a}")
# name -> h5py dataset options. lzf: much faster than gzip for somewhat more bytes. fletcher32: a
# damaged chunk is a read error, never silently wrong flow.
COMPRESSION = {
    "lzf": {"compression": "lzf", "shuffle": True, "fletcher32": True},
    "gzip": {"compression": "gzip", "compression_opts": 1, "shuffle": True, "fletcher32": True},
    "none": {"fletcher32": True},
}


def pair_key(a: int, b: int) -> str:
    return f"{a}_{b}"


def _plain(value):
    """h5py attribute → plain Python (bytes → str, arrays → lists) for comparisons and messages."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


def _dims(shape: tuple) -> str:
    return "×".join(map(str, shape)) or "a scalar"


def read_attrs(path: str | Path) -> dict:
    import h5py

    with h5py.File(path, "r") as h5:
        return {k: _plain(v) for k, v in h5.attrs.items()}


def mismatched(stored: dict, wanted: dict) -> list[str]:
    """Keys of ``wanted`` (value None = don't care) whose stored value differs."""
    return [k for k, v in wanted.items() if v is not None and _plain(stored.get(k)) != _plain(v)]


class FlowStore:
    """Reader for training, evaluation and the demo video.

    ``expect`` = attributes the caller relies on (e.g. ``{"estimator": "dis", "image_size":
    [512, 1024]}``); any difference is an EtcError naming the file and the key. The HDF5 handle
    is opened lazily once per process, so an instance can be handed to DataLoader workers.
    """

    def __init__(self, path: str | Path, expect: dict | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            partial = self.path.with_name(self.path.stem + ".partial.h5")
            hint = f" ({partial} exists: rerun the same command to finish it)" if partial.is_file() else ""
            raise EtcError(f"flow store {self.path} not found{hint}; run `etc precompute-flow ... --out {self.path}`")
        self._h5 = None
        self._pid = None
        try:
            attrs = read_attrs(self.path)
        except OSError:
            raise EtcError(f"{self.path} is {describe(self.path)}, not a flow store; give the store "
                           f"`etc precompute-flow --out` wrote, or delete it and rerun precompute-flow") from None
        if attrs.get("format") != FORMAT:
            raise EtcError(f"{self.path} is {describe(self.path)}, not a flow store; give the store "
                           f"`etc precompute-flow --out` wrote")
        if not attrs.get("complete"):
            raise EtcError(f"{self.path} is not a complete etc flow store (format {attrs.get('format')!r}, "
                           f"complete={attrs.get('complete')}); delete it and rerun precompute-flow")
        missing = [k for k in REQUIRED_ATTRS if k not in attrs]
        if missing:
            raise EtcError(f"{self.path} lacks the flow-store attribute(s) {', '.join(missing)}: it was not written "
                           f"by this version of `etc precompute-flow`; delete it and rerun precompute-flow")
        for key in mismatched(attrs, expect or {}):
            raise EtcError(f"{self.path}: attribute '{key}' is {attrs.get(key)!r}, the request needs "
                           f"{_plain(expect[key])!r}; recompute the flow with the current settings")
        self.attrs = attrs
        self.image_size = tuple(attrs["image_size"])
        self.stored_size = tuple(attrs["stored_size"])

    def _file(self):
        import h5py

        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def close(self) -> None:
        """Drop the HDF5 handle (the next read reopens it): its metadata cache grows with every
        group read, up to HDF5's cap of 32 MB, so a reader that walks a whole
        split (etc evaluate) closes it between clips to keep its memory flat."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def has(self, clip: str, a: int, b: int) -> bool:
        h5 = self._file()
        return clip in h5 and (pair_key(a, b) in h5[clip] or pair_key(b, a) in h5[clip])

    def read(self, clip: str, a: int, b: int, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(F_{a→b} as 2×H×W float32 in pixels of ``size``, occluded H×W bool) — ``size`` defaults
        to the stored size; vectors are rescaled with the resolution (etc.flow.warp.resize_flow)."""
        if size is not None:
            self._check_aspect(size)
        h5 = self._file()
        if clip not in h5:
            raise EtcError(f"{self.path} has no clip '{clip}'; was it computed for another split or dataset?")
        g = h5[clip]
        if pair_key(a, b) in g:
            pg, d = g[pair_key(a, b)], "fw"
        elif pair_key(b, a) in g:
            pg, d = g[pair_key(b, a)], "bw"
        else:
            raise EtcError(f"{self.path}: clip '{clip}' has no flow for frames {a}→{b} (pairs "
                           f"'{self.attrs.get('pairs')}'); check dataset.window or recompute with --pairs both")
        try:
            flow = torch.from_numpy(pg[d][()].astype(np.float32))[None]
            occ = torch.from_numpy(pg[f"occ_{d}"][()])[None, None]
        except OSError as exc:
            raise EtcError(f"{self.path}: {clip}/{pg.name.rsplit('/', 1)[-1]}/{d} is damaged ({exc}); "
                           f"delete the file and rerun precompute-flow") from None
        self._check_shape(clip, pg, d, tuple(flow.shape[1:]), (2, *self.stored_size))
        self._check_shape(clip, pg, f"occ_{d}", tuple(occ.shape[2:]), self.stored_size)
        if size is not None and tuple(size) != tuple(flow.shape[-2:]):
            flow = resize_flow(flow, tuple(size))
            occ = torch.nn.functional.interpolate(occ.float(), size=tuple(size), mode="nearest")
        return flow[0], occ[0, 0] > 0

    def _check_shape(self, clip: str, pg, name: str, found: tuple, expected: tuple) -> None:
        """A pair's array of another shape than the store's attributes promise (2×h×w flow, h×w
        occlusion at ``stored_size``) would be rescaled or broadcast into wrong flow."""
        if tuple(found) != tuple(expected):
            raise EtcError(f"flow store {self.path}: clip '{clip}', pair {pg.name.rsplit('/', 1)[-1]}: {name} is "
                           f"{_dims(found)}, expected {_dims(expected)} (stored_size {list(self.stored_size)}); "
                           f"the store is damaged or was altered: delete it and rerun precompute-flow")

    def _check_aspect(self, size) -> None:
        (h0, w0), (h, w) = self.image_size, size
        if abs(h / h0 - w / w0) > 0.02 * max(h / h0, w / w0):
            raise EtcError(f"{self.path} holds flow of {h0}×{w0} frames; a {h}×{w} request is not a scaled "
                           f"version of it: the store was computed for other data (recompute it)")

    def reader(self):
        """The ``flow_reader(clip, t, s, (H, W))`` callable that etc.data.pairs expects."""
        return self.read

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"] = None
        return state


class StoreWriter:
    """Appends pairs to ``OUT.partial.h5`` so that a kill at any point is recoverable.

    Each pair's data is flushed before its ``complete`` mark is written and flushed, so a mark
    never precedes its data. Reopening drops unmarked pairs; a partial file that HDF5 cannot
    open or walk (killed during a metadata write) or that was started with other settings is
    started anew, with a warning. :meth:`finish` marks the file complete and renames it.
    """

    def __init__(self, out: Path, attrs: dict, compression: str = "lzf"):
        if compression not in COMPRESSION:
            raise EtcError(f"unknown flow compression '{compression}'; use {', '.join(COMPRESSION)}")
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.stem + ".partial.h5")
        self.attrs = {**attrs, "format": FORMAT, "compression": compression, "convention": CONVENTION}
        self.options = COMPRESSION[compression]
        self.h5 = None
        self.done: set[tuple[str, str]] = set()
        self._open()

    def _open(self) -> None:
        import h5py

        if self.partial.exists():
            try:
                h5 = h5py.File(self.partial, "a")
                try:
                    bad = mismatched({k: _plain(v) for k, v in h5.attrs.items()}, self.attrs)
                    if not bad:
                        self.h5 = h5
                        self._scan()
                        return
                    log.warning("%s was started with other settings (%s); starting anew", self.partial, ", ".join(bad))
                finally:
                    if self.h5 is None:
                        h5.close()
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                log.warning("%s is damaged (interrupted during a write: %s); starting anew", self.partial, exc)
                if self.h5 is not None:
                    self.h5.close()
                self.h5, self.done = None, set()
            self.partial.unlink()
        from etc.core.io import output_folder

        output_folder(self.out)
        output_folder(self.partial)
        self.h5 = h5py.File(self.partial, "w")
        self.h5.attrs.update(self.attrs)
        self.h5.flush()

    def _scan(self) -> None:
        """Keep marked pairs whose datasets are all there; drop the rest (half-written)."""
        shape = tuple(self.attrs["stored_size"])
        dropped = 0
        for clip in list(self.h5):
            for key in list(self.h5[clip]):
                pg = self.h5[clip][key]
                ok = pg.attrs.get("complete", False) and all(
                    name in pg and pg[name].shape[-2:] == shape for name in ("fw", "bw", "occ_fw", "occ_bw"))
                if ok:
                    self.done.add((clip, key))
                else:
                    del self.h5[clip][key]
                    dropped += 1
        if dropped:
            log.info("%s: dropped %d half-written pairs", self.partial, dropped)

    def has(self, clip: str, a: int, b: int) -> bool:
        return (clip, pair_key(a, b)) in self.done

    def write(self, clip: str, a: int, b: int, fw: np.ndarray, bw: np.ndarray, occ_fw: np.ndarray, occ_bw: np.ndarray) -> None:
        pg = self.h5.require_group(clip).create_group(pair_key(a, b))
        for name, data in (("fw", fw), ("bw", bw), ("occ_fw", occ_fw), ("occ_bw", occ_bw)):
            pg.create_dataset(name, data=data, chunks=data.shape, **self.options)
        self.h5.flush()
        pg.attrs["complete"] = True
        self.h5.flush()
        self.done.add((clip, pair_key(a, b)))

    def close(self) -> None:
        if self.h5 is not None:
            self.h5.close()
            self.h5 = None

    def finish(self) -> Path:
        self.h5.attrs["complete"] = True
        self.close()
        os.replace(self.partial, self.out)
        return self.out


# Bytes per stored pixel of one pair: fw and bw (2 channels each, the store's dtype) and the
# two uint8 occlusion masks (this module's layout).
FLOW_BYTES_PER_PIXEL = {"float16": 2 * 2 * 2 + 2, "float32": 2 * 2 * 4 + 2}


def flow_store_bytes(pairs: int, stored_size: tuple[int, int], dtype: str) -> int:
    return int(pairs) * stored_size[0] * stored_size[1] * FLOW_BYTES_PER_PIXEL[dtype]
