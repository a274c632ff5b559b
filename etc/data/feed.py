"""Frames to the network: batches of PNGs decoded ahead of it, shipped as uint8, normalised on
the device.

On a GPU the CPU would otherwise decode while the GPU idles (with decoding on the main thread
`etc infer` fell far below the bare forward's frames/s). Whole batches are decoded in
a thread pool (OpenCV releases the GIL), as many batches ahead as there are threads, into
pinned buffers that copy to the GPU without blocking; a uint8 batch is a quarter of the bytes
of a float one, and the float conversion runs on the GPU. On a CPU the network needs every core
while it runs, so batches are decoded between forward passes (each frame's normalisation done
by a table lookup as it is decoded), optionally with the frames of a batch spread over threads.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from etc.core.errors import EtcError


def load_batch(paths: Sequence[Path], pin: bool = False, normalised: bool = False,
               pool: ThreadPoolExecutor | None = None) -> torch.Tensor:
    """The frames at ``paths`` as one B×H×W×3 tensor: uint8 (pinned when asked), or with
    ``normalised`` the network's float input, converted frame by frame as it is decoded
    (:func:`etc.data.pairs.normalise_into`). With a ``pool`` the frames are decoded at once,
    one per thread."""
    from etc.data.clips import read_image
    from etc.data.pairs import normalise_into

    size = png_size(paths[0])
    first = None
    if size is None:  # not a PNG: its size is known once it is decoded
        first = read_image(paths[0])
        size = first.shape[:2]
    out = torch.empty((len(paths), *size, 3), dtype=torch.float32 if normalised else torch.uint8, pin_memory=pin)
    view = out.numpy()

    def put(i: int) -> None:
        img = first if i == 0 and first is not None else read_image(paths[i])
        if img.shape[:2] != size:
            raise EtcError(f"{paths[i]} is {img.shape[1]}×{img.shape[0]}, the other frames of its clip "
                           f"{size[1]}×{size[0]}; every frame of a clip must have one size")
        if normalised:
            normalise_into(img, view[i])
        else:
            view[i] = img

    if pool is None:
        for i in range(len(paths)):
            put(i)
    else:
        list(pool.map(put, range(len(paths))))
    return out


def png_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from a PNG's header, or None when ``path`` is not a readable PNG."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(height), int(width)


class BatchFeed:
    """Iterates over the batches of ``batches`` (lists of frame paths), in order.

    ``threads`` = 0: each batch is decoded in the consumer's thread when it asks for it.
    ``threads`` > 0 and ``ahead``: that many batches are decoded at once, one per thread, ahead
    of the consumer (for a GPU: the CPU decodes while the GPU computes). ``threads`` > 0 and
    not ``ahead``: each batch is decoded when asked for, its frames spread over the threads
    (for a CPU: decoding uses every core in between forward passes instead of one, and never
    competes with the network for the cores).

    Entered as a context, it starts at once on the first batch, so that decoding overlaps
    whatever the consumer does before it asks (loading the model); the others start when the
    consumer first asks.
    """

    def __init__(self, batches: Sequence[Sequence[Path]], threads: int = 0, pin: bool = False,
                 normalised: bool = False, ahead: bool = True):
        self.batches, self.threads, self.pin = list(batches), int(threads), pin
        self.normalised, self.ahead = normalised, ahead and threads > 0
        self._pool = self._starter = None
        self._queue: deque[Future] = deque()
        self._next = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __enter__(self) -> BatchFeed:
        if self.threads > 0:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="decode")
        if self.batches:  # the first batch, in a thread of its own (it may fan out over the pool)
            self._starter = ThreadPoolExecutor(1, thread_name_prefix="decode-first")
            self._queue.append(self._starter.submit(self._load, 0))
            self._next = 1
        return self

    def __exit__(self, *exc) -> None:
        for fut in self._queue:  # the consumer stopped early or failed: drop what is queued
            fut.cancel()
        self._queue.clear()
        for pool in (self._starter, self._pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._starter = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        entered = self._pool is not None or self._starter is not None or self._next > 0
        if not entered:
            self.__enter__()
        try:
            for _ in range(len(self.batches)):
                if self._queue:
                    batch = self._queue.popleft().result()
                else:
                    batch = self._load(self._next)
                    self._next += 1
                if self.ahead:
                    self._top_up()
                yield batch
        finally:
            if not entered:
                self.__exit__(None, None, None)

    def _load(self, i: int) -> torch.Tensor:
        fan_out = self._pool if not self.ahead else None
        return load_batch(self.batches[i], self.pin, self.normalised, fan_out)

    def _top_up(self) -> None:
        """Keep one batch per thread in flight, and one more ready for the consumer."""
        while len(self._queue) <= self.threads and self._next < len(self.batches):
            self._queue.append(self._pool.submit(self._load, self._next))
            self._next += 1


def to_network(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A B×H×W×3 batch from :func:`load_batch` → the normalised B×3×H×W float batch on
    ``device``; bitwise equal to :func:`etc.data.pairs.images_to_batch` of the same frames
    when ``device`` is the CPU."""
    from etc.data.pairs import normalise_, raw_images

    if batch.dtype == torch.uint8:
        return normalise_(raw_images(batch.to(device, non_blocking=True), channels_last))
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2)  # already normalised, NHWC
    return x if channels_last else x.contiguous()
