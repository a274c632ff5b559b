"""The frozen teacher's outputs on every image a distilled student's batches can hold, computed
once before the first step instead of in every step.

Where the flip is the augmentation's only draw that changes pixels (the default's), every frame
of a batch is one of two images, so over a whole run the teacher sees at most 2 × frames
distinct inputs: 1 920 on the default config, against 16 000 forwards in the 1 000 steps of a
two-frame student. The teacher's forward was a large share of a distilled step on a CPU
(`benchmarks/bench_train_step.py`, docs/performance.md); with the table it looks them up.

The outputs are bitwise the online teacher's, so a student trains to the same weights with or
without the table (tests/test_teacher_cache.py): the table is computed in batches of the
training batch's size (per process), because a convolution's last bits depend on the batch
shape (a batch of 1 or 16 differs from a batch of 8) but not on the
other samples of the batch; and it keeps the stride-8 features and class scores
(``full_logits=False``), upsampled in each step exactly as the teacher's forward does.

Random scale, rotation, crop or blur (the Cityscapes preset) make every input new: the teacher
then runs online as before. So does a table larger than ``teacher_cache_mb``.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SIDES = ("t", "n", "third")  # the frames of a step, in train_step's order; batch keys key_<side>


class TeacherCache:
    """Key → the teacher's outputs, as the teacher's forward returns them for a batch of keys."""

    def __init__(self, rows: torch.Tensor, feat: torch.Tensor, logits_low: torch.Tensor,
                 logits_size: tuple[int, int], frame_size: tuple[int, int], memory_format):
        self.rows, self.feat, self.logits_low = rows, feat, logits_low
        self.logits_size, self.frame_size, self.memory_format = logits_size, frame_size, memory_format

    @property
    def nbytes(self) -> int:
        return self.feat.nbytes + self.logits_low.nbytes

    def __call__(self, keys: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = self.rows[keys.to(self.rows.device)]  # a key never computed is row -1: index_select refuses it
        fmt = self.memory_format
        low = self.logits_low.index_select(0, rows).contiguous(memory_format=fmt)
        h, w = self.frame_size
        logits = F.interpolate(low, self.logits_size, mode="bilinear", align_corners=False)[..., :h, :w]
        return {"feat": self.feat.index_select(0, rows).contiguous(memory_format=fmt), "logits": logits}


def build_teacher_cache(teacher: torch.nn.Module, dataset, sides: tuple[str, ...], batch_size: int,
                        device: torch.device, *, channels_last: bool = False, bf16: bool = False,
                        cap_mb: float = 1024.0, progress: bool = True) -> TeacherCache | None:
    """The table of ``teacher`` over every (frame, variant) of ``dataset`` (a keyed
    etc.data.pairs.PairDataset) on the given sides, or None (logged) where it would exceed
    ``cap_mb`` or the frames differ in size."""
    from tqdm import tqdm

    from etc.data.clips import read_image
    from etc.data.pairs import normalise, raw_images

    augment = dataset.augment
    variants = augment.variants() if augment is not None else (False,)
    entries = [(key + int(flip), path, flip) for key, path in dataset.frame_images(sides) for flip in variants]
    if not entries:
        return None
    rows = torch.full((2 * len(dataset.frame_ids),), -1, dtype=torch.long, device=device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    feat = logits = None
    shape = None
    bar = tqdm(total=len(entries), desc="teacher outputs", unit="frame", disable=not progress or None)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(entries), batch_size):
            chunk = entries[start:start + batch_size]
            images = [read_image(path) for _, path, _ in chunk]
            if augment is not None:
                images = [augment.variant(img, flip) for img, (_, _, flip) in zip(images, chunk, strict=True)]
            if shape is None:
                shape = images[0].shape
            if any(img.shape != shape for img in images):
                bar.close()
                log.info("teacher cache off: the training frames differ in size; the teacher runs in every step")
                return None
            images += [images[0]] * (batch_size - len(images))  # the step's batch shape: see the module docstring
            x = normalise(raw_images(torch.from_numpy(np.stack(images)).to(device), channels_last))
            out = teacher(x, full_logits=False)
            if feat is None:
                per_entry = (out["feat"][0].nbytes + out["logits_low"][0].nbytes) / 2**20
                if per_entry * len(entries) > cap_mb:
                    bar.close()
                    log.info("teacher cache off: %d frames × %.2f MB exceed teacher_cache_mb %g; the teacher runs "
                             "in every step", len(entries), per_entry, cap_mb)
                    return None
                feat = out["feat"].new_empty((len(entries), *out["feat"].shape[1:]))
                logits = out["logits_low"].new_empty((len(entries), *out["logits_low"].shape[1:]))
                logits_size = out["logits_size"]
            n = len(chunk)
            feat[start:start + n] = out["feat"][:n]
            logits[start:start + n] = out["logits_low"][:n]
            rows[[key for key, _, _ in chunk]] = torch.arange(start, start + n, device=device)
            bar.update(n)
    bar.close()
    cache = TeacherCache(rows, feat, logits, logits_size, tuple(shape[:2]), fmt)
    log.info("teacher cache: %d frame images, %.0f MB", len(entries), cache.nbytes / 2**20)
    return cache
