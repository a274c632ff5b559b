"""Frames to the network: batches of PNGs decoded ahead of it, shipped as uint8, normalised on
the device.

On a GPU the CPU would otherwise decode while the GPU idles (issue 14: `etc infer` reached 0.08
of the bare forward's frames/s with decoding on the main thread). Whole batches are decoded in
a thread pool (OpenCV releases the GIL), as many batches ahead as there are threads, into
pinned buffers that copy to the GPU without blocking; a uint8 batch is a quarter of the bytes
of a float one, and the float conversion runs on the GPU. With no threads (the CPU default)
each batch is decoded when asked for, as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from etc.errors import EtcError


def load_batch(paths: Sequence[Path], pin: bool = False, normalised: bool = False) -> torch.Tensor:
    """The frames at ``paths`` as one B×H×W×3 tensor: uint8 (pinned when asked), or with
    ``normalised`` the network's float input, converted frame by frame as it is decoded
    (:func:`etc.data.pairs.normalise_into`)."""
    from etc.data.clips import read_image
    from etc.data.pairs import normalise_into

    first = read_image(paths[0])
    dtype = torch.float32 if normalised else torch.uint8
    out = torch.empty((len(paths), *first.shape), dtype=dtype, pin_memory=pin)
    view = out.numpy()
    for i, path in enumerate(paths):
        img = first if i == 0 else read_image(path)
        if img.shape != first.shape:
            raise EtcError(f"{path} is {img.shape[1]}×{img.shape[0]}, the other frames of its clip "
                           f"{first.shape[1]}×{first.shape[0]}; every frame of a clip must have one size")
        if normalised:
            normalise_into(img, view[i])
        else:
            view[i] = img
    return out


class BatchFeed:
    """Iterates over uint8 batches of ``batches`` (lists of frame paths), in order.

    ``threads`` > 0: that many batches are decoded at once, ahead of the consumer; 0: each
    batch is decoded in the consumer's thread when it asks for it.
    """

    def __init__(self, batches: Sequence[Sequence[Path]], threads: int = 0, pin: bool = False,
                 normalised: bool = False):
        self.batches, self.threads, self.pin, self.normalised = list(batches), int(threads), pin, normalised

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.threads <= 0:
            for paths in self.batches:
                yield load_batch(paths, self.pin, self.normalised)
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="decode") as pool:
            ahead: deque[Future] = deque()
            todo = iter(self.batches)
            try:
                for paths in todo:
                    ahead.append(pool.submit(load_batch, paths, self.pin, self.normalised))
                    if len(ahead) > self.threads:
                        yield ahead.popleft().result()
                while ahead:
                    yield ahead.popleft().result()
            finally:
                for fut in ahead:  # the consumer stopped early or failed: drop what is queued
                    fut.cancel()


def to_network(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A B×H×W×3 batch from :func:`load_batch` → the normalised B×3×H×W float batch on
    ``device``; bitwise equal to :func:`etc.data.pairs.images_to_batch` of the same frames
    when ``device`` is the CPU."""
    from etc.data.pairs import normalise_, raw_images

    if batch.dtype == torch.uint8:
        return normalise_(raw_images(batch.to(device, non_blocking=True), channels_last))
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2)  # already normalised, NHWC
    return x if channels_last else x.contiguous()
