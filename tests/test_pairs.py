"""The sampler makes each batch a pure function of (seed, iteration): resumable and rank-split."""

from etc.data.pairs import IterationSampler


def test_batches_depend_only_on_seed_and_iteration():
    full = list(IterationSampler(10, 4, 7, seed=3))
    resumed = list(IterationSampler(10, 4, 7, seed=3, start=4))
    assert resumed == full[4:]
    other = list(IterationSampler(10, 4, 7, seed=4))
    assert other != full


def test_every_pair_once_per_epoch():
    s = IterationSampler(12, 4, 3, seed=0)  # 3 iterations × 4 = one epoch of 12
    seen = [idx for batch in s for idx, _ in batch]
    assert sorted(seen) == list(range(12))


def test_ranks_split_the_global_batch():
    single = list(IterationSampler(10, 4, 5, seed=1))
    r0 = list(IterationSampler(10, 4, 5, seed=1, rank=0, world_size=2))
    r1 = list(IterationSampler(10, 4, 5, seed=1, rank=1, world_size=2))
    for g, a, b in zip(single, r0, r1, strict=True):
        assert sorted(a + b) == sorted(g) and len(a) == len(b) == 2


def test_images_to_batch_is_bitwise_the_training_preprocessing():
    import numpy as np
    import torch

    from etc.data.pairs import images_to_batch, normalise, to_tensor_image

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (7, 9, 3), dtype=np.uint8) for _ in range(3)]
    ref = torch.stack([normalise(to_tensor_image(i)) for i in imgs])
    nhwc, nchw = images_to_batch(imgs, channels_last=True), images_to_batch(imgs, channels_last=False)
    assert torch.equal(nhwc, ref) and torch.equal(nchw, ref)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and nchw.is_contiguous()
