"""The training dataset: (labelled frame t, neighbour t+k) pairs with their precomputed flow,
augmented together (with a third frame for MF over three frames, ``third=True``), and a sampler
that makes every batch a pure function of (seed, iteration).

That sampler is what makes training resumable bit for bit and lets DDP ranks split one global
batch: the pairs and augmentation seeds of iteration i never depend on what ran before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from etc.data.augment import PairedAugment
from etc.data.clips import Clip, read_image, read_label, third_frame
from etc.errors import EtcError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# flow_reader(clip_name, t, s, (H, W)) -> (F_{t→s} as 2×H×W tensor, occluded H×W bool tensor)
FlowReader = Callable[[str, int, int, tuple[int, int]], tuple[torch.Tensor, torch.Tensor]]


def normalise(raw: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of B×3×H×W (or 3×H×W) images in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=raw.dtype, device=raw.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=raw.dtype, device=raw.device).view(-1, 1, 1)
    return (raw - mean) / std


def to_tensor_image(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def images_to_batch(imgs: Sequence[np.ndarray], channels_last: bool = True) -> torch.Tensor:
    """H×W×3 uint8 images → normalised B×3×H×W float batch, bitwise equal to
    ``normalise(to_tensor_image(img))`` per image.

    The uint8 stack is already NHWC in memory, so a channels_last batch needs no layout
    copy, and the arithmetic runs in place (at 512×1024 this is ~3× cheaper than per-image
    conversion followed by ``contiguous(memory_format=channels_last)``).
    """
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)
    x = x.float() if channels_last else x.contiguous().float()
    mean = torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, -1, 1, 1)
    return x.div_(255.0).sub_(mean).div_(std)


class PairDataset(torch.utils.data.Dataset):
    """Item key = (pair index, augmentation seed); see :class:`IterationSampler`.

    ``third``: each item also holds ``image_third`` (the frame :func:`etc.data.clips.third_frame`
    picks, under the same augmentation) and ``k_third`` (its offset from t).
    """

    def __init__(
        self,
        dataset: str,
        pairs: Sequence[tuple[Clip, int, int]],
        flow_reader: FlowReader | None,
        augment: PairedAugment | None = None,
        third: bool = False,
    ):
        self.dataset = dataset
        self.pairs = list(pairs)
        self.flow_reader = flow_reader
        self.augment = augment
        self.third = third

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
        raw_t, raw_n = to_tensor_image(sample["image_t"]), to_tensor_image(sample["image_n"])
        extra = {}
        if self.third:
            extra = {"image_third": normalise(to_tensor_image(sample["image_third"])), "k_third": torch.tensor(u - t)}
        return {
            "raw_t": raw_t,
            "raw_n": raw_n,
            "image_t": normalise(raw_t),
            "image_n": normalise(raw_n),
            "label_t": torch.from_numpy(sample["label_t"].astype(np.int64)),
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
