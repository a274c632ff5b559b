"""The training dataset: (labelled frame t, neighbour t+k) pairs with their precomputed flow,
augmented together (with a third frame for MF over three frames, ``third=True``), and a sampler
that makes every batch a pure function of (seed, iteration).

That sampler is what makes training resumable bit for bit and lets DDP ranks split one global
batch: the pairs and augmentation seeds of iteration i never depend on what ran before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from etc.core.errors import EtcError
from etc.data.augment import PairedAugment
from etc.data.clips import Clip, read_image, read_label, third_frame

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# flow_reader(clip_name, t, s, (H, W)) -> (F_{t→s} as 2×H×W tensor, occluded H×W bool tensor)
FlowReader = Callable[[str, int, int, tuple[int, int]], tuple[torch.Tensor, torch.Tensor]]


def normalise(raw: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of B×3×H×W (or 3×H×W) images in [0, 1]."""
    mean, std = _mean_std(raw.device, raw.dtype)
    return (raw - mean) / std


@functools.cache
def _mean_std(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation constants as 3×1×1 tensors on ``device``, made once: creating them
    from Python values is a blocking copy on a GPU, which would make the CPU wait for every
    queued kernel at each batch."""
    return (torch.tensor(IMAGENET_MEAN, dtype=dtype, device=device).view(-1, 1, 1),
            torch.tensor(IMAGENET_STD, dtype=dtype, device=device).view(-1, 1, 1))


def to_tensor_image(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def raw_images(nhwc: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """B×H×W×3 uint8 → B×3×H×W float in [0, 1], on the tensor's device; bitwise equal to
    :func:`to_tensor_image` per image. The uint8 stack is already NHWC in memory, so a
    channels_last result needs no layout copy."""
    x = nhwc.permute(0, 3, 1, 2)
    x = x.float() if channels_last else x.contiguous().float()
    return x.div_(255.0)


def images_to_batch(imgs: Sequence[np.ndarray], channels_last: bool = True) -> torch.Tensor:
    """H×W×3 uint8 images → normalised B×3×H×W float batch, bitwise equal to
    ``normalise(to_tensor_image(img))`` per image.

    The arithmetic runs in place on the NHWC stack (cheaper than
    per-image conversion followed by ``contiguous(memory_format=channels_last)``).
    """
    return normalise_(raw_images(torch.from_numpy(np.stack(imgs)), channels_last))


def normalise_(raw: torch.Tensor) -> torch.Tensor:
    """:func:`normalise` of a B×3×H×W batch, in place (same arithmetic, same bits)."""
    mean, std = _mean_std(raw.device, raw.dtype)
    return raw.sub_(mean).div_(std)


@functools.cache
def normalise_table() -> np.ndarray:
    """1×256×3 float32: the normalised value of every uint8 level per channel, computed by
    :func:`images_to_batch`'s own arithmetic, so that looking images up in it (``cv2.LUT``) is
    bitwise the same conversion in one pass instead of four, and much faster."""
    levels = torch.arange(256, dtype=torch.uint8).view(1, 256, 1, 1).expand(1, 256, 1, 3).contiguous()
    table = normalise_(raw_images(levels, channels_last=True))  # 1×3×256×1, NHWC in memory
    return np.ascontiguousarray(table.permute(0, 2, 3, 1).reshape(1, 256, 3).numpy())


def normalise_into(img: np.ndarray, out: np.ndarray) -> None:
    """Write the normalised float32 H×W×3 version of uint8 ``img`` into ``out`` (same shape)."""
    import cv2

    cv2.LUT(img, normalise_table(), dst=out)


def device_batch(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool = False) -> dict[str, torch.Tensor]:
    """A collated :class:`PairDataset` batch (uint8 images and labels, as the workers ship
    them: 4× and 8× fewer bytes to copy) → the tensors a training step reads, on ``device``.

    Copies are non-blocking (the loader pins its batches on CUDA) and the conversion to float
    runs on the device. On CPU the result is bitwise what per-sample conversion gave:
    ``raw_*`` = :func:`to_tensor_image`, ``image_*`` = :func:`normalise` of it, ``label_t``
    int64.
    """
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    for side in ("t", "n"):
        raw = raw_images(b.pop(f"image_{side}"), channels_last)
        b[f"raw_{side}"] = raw
        b[f"image_{side}"] = normalise(raw)
    if "image_third" in b:  # MF's third frame: the network's input only
        b["image_third"] = normalise(raw_images(b["image_third"], channels_last))
    b["label_t"] = b["label_t"].long()
    return b


def worker_init(_worker_id: int) -> None:
    """Each DataLoader worker decodes and warps on one core (torch already sets one thread in
    workers; OpenCV would otherwise start a pool per worker and oversubscribe the CPUs)."""
    import cv2

    cv2.setNumThreads(1)


class PairDataset(torch.utils.data.Dataset):
    """Item key = (pair index, augmentation seed); see :class:`IterationSampler`. Items hold
    H×W×3 uint8 images and an H×W uint8 label map; :func:`device_batch` turns a collated batch
    into the float tensors a step reads.

    ``third``: each item also holds ``image_third`` (the frame :func:`etc.data.clips.third_frame`
    picks, under the same augmentation) and ``k_third`` (its offset from t).

    ``keyed``: each item also names its frames' images as ``key_t``, ``key_n`` (and
    ``key_third``) = :meth:`frame_key` of (clip, frame, flipped): what etc.train.teacher_cache looks
    the teacher's outputs up by. Only where the augmentation's variants are finite.
    """

    def __init__(
        self,
        dataset: str,
        pairs: Sequence[tuple[Clip, int, int]],
        flow_reader: FlowReader | None,
        augment: PairedAugment | None = None,
        third: bool = False,
        keyed: bool = False,
    ):
        self.dataset = dataset
        self.pairs = list(pairs)
        self.flow_reader = flow_reader
        self.augment = augment
        self.third = third
        self.frame_ids: dict[tuple[str, int], int] | None = None
        if keyed:
            if augment is not None and augment.variants() is None:
                raise ValueError("keyed items need an augmentation with finite variants (flip only)")
            self.frame_ids = {}
            for clip, sides in self._sides():
                for i in sides.values():
                    self.frame_ids.setdefault((clip.name, i), len(self.frame_ids))

    def frame_key(self, clip: Clip, index: int, flipped: bool) -> int:
        """The row of one augmented frame image in the table of every (frame, flip) the
        items can hold: 2 × frame id + flipped."""
        return 2 * self.frame_ids[(clip.name, index)] + int(flipped)

    def _sides(self) -> Iterator[tuple[Clip, dict[str, int]]]:
        for clip, t, s in self.pairs:
            yield clip, {"t": t, "n": s, **({"third": third_frame(t, s, len(clip))} if self.third else {})}

    def frame_images(self, sides: Sequence[str] = ("t", "n", "third")) -> list[tuple[int, str]]:
        """(key of the unflipped variant, image path) of every frame an item holds on ``sides``."""
        seen: dict[int, str] = {}
        for clip, frames in self._sides():
            for side, i in frames.items():
                if side in sides:
                    seen.setdefault(self.frame_key(clip, i, False), clip.frames[i].image)
        return list(seen.items())

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        clip, t, s = self.pairs[index]
        ft, fs = clip.frames[t], clip.frames[s]
        img_t, img_s = read_image(ft.image), read_image(fs.image)
        label_t = read_label(ft.label, self.dataset)
        _same_size(ft.image, img_t, fs.image, img_s, "frame")
        _same_size(ft.image, img_t, ft.label, label_t, "label map")
        h, w = img_t.shape[:2]
        sample = {"image_t": img_t, "image_n": img_s, "label_t": label_t}
        if self.flow_reader is not None:
            flow, occ = self.flow_reader(clip.name, t, s, (h, w))
            sample["flow"] = flow.permute(1, 2, 0).numpy().astype(np.float32)
            sample["valid"] = ~occ.numpy()
        else:
            sample["flow"] = np.zeros((h, w, 2), np.float32)
            sample["valid"] = np.zeros((h, w), bool)
        if self.third:
            u = third_frame(t, s, len(clip))
            sample["image_third"] = read_image(clip.frames[u].image)
            _same_size(ft.image, img_t, clip.frames[u].image, sample["image_third"], "frame")
        if self.augment is not None:
            sample = self.augment(sample, np.random.default_rng(seed))
        extra = {}
        if self.third:
            extra = {"image_third": torch.from_numpy(np.ascontiguousarray(sample["image_third"])),
                     "k_third": torch.tensor(u - t)}
        if self.frame_ids is not None:
            flipped = bool(sample.get("flipped", False))
            extra.update({f"key_{side}": torch.tensor(self.frame_key(clip, i, flipped))
                          for side, i in (("t", t), ("n", s)) + ((("third", u),) if self.third else ())})
        return {  # uint8 until on the device: see device_batch
            "image_t": torch.from_numpy(np.ascontiguousarray(sample["image_t"])),
            "image_n": torch.from_numpy(np.ascontiguousarray(sample["image_n"])),
            "label_t": torch.from_numpy(np.ascontiguousarray(sample["label_t"], dtype=np.uint8)),
            "flow": torch.from_numpy(np.ascontiguousarray(sample["flow"])).permute(2, 0, 1).float(),
            "occ": torch.from_numpy(~sample["valid"]),
            "k": torch.tensor(s - t),
            **extra,
        }


def _same_size(image_path, image: np.ndarray, other_path, other: np.ndarray, what: str) -> None:
    """A pair's frames and the label are used pixel for pixel: another size is an error, never
    padded or cropped into place."""
    if other.shape[:2] != image.shape[:2]:
        (h, w), (oh, ow) = image.shape[:2], other.shape[:2]
        raise EtcError(f"{what} {other_path} is {oh}×{ow} but {image_path} is {h}×{w}; "
                       f"they must be the same size (run `etc check-data`)")


class IterationSampler(torch.utils.data.Sampler):
    """Yields, for iterations ``start..iterations-1``, this rank's share of the global batch as
    ``(pair index, augmentation seed)`` keys.

    Pairs are drawn epoch by epoch from a permutation seeded by (seed, epoch); the augmentation
    seed of a sample is (seed, iteration, slot), so it does not depend on the number of ranks.
    """

    def __init__(self, num_pairs: int, batch_size: int, iterations: int, seed: int,
                 start: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} is not divisible by {world_size} processes")
        self.n, self.batch, self.iterations, self.seed = num_pairs, batch_size, iterations, seed
        self.start, self.rank, self.world = start, rank, world_size

    def global_batch(self, iteration: int) -> list[tuple[int, int]]:
        keys = []
        for slot in range(self.batch):
            pos = iteration * self.batch + slot
            epoch, offset = divmod(pos, self.n)
            perm = self._perm(epoch)
            aug_seed = int(np.random.SeedSequence([self.seed, iteration, slot]).generate_state(1)[0])
            keys.append((int(perm[offset]), aug_seed))
        return keys

    def _perm(self, epoch: int) -> np.ndarray:
        cache = getattr(self, "_cache", None)
        if cache is None or cache[0] != epoch:
            self._cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._cache[1]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for it in range(self.start, self.iterations):
            yield self.global_batch(it)[self.rank::self.world]

    def __len__(self) -> int:
        return max(0, self.iterations - self.start)
