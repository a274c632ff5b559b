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


def test_third_frame_mirrors_the_neighbour_about_t_inside_the_clip():
    from etc.data.clips import third_frame

    assert third_frame(6, 8, 10) == 4 and third_frame(6, 5, 10) == 7  # (t−k, t, t+k)
    assert third_frame(1, 3, 10) == 5  # t − k = −1 leaves the clip: continue, t + 2k
    assert third_frame(8, 6, 10) == 4 and third_frame(1, 0, 3) == 2
    assert third_frame(1, 3, 4) == 1  # neither fits: t itself


def test_the_third_frame_gets_the_pairs_augmentation(synthetic_tree):
    """image_third is what the same sample would give as the neighbour t − k: one transform
    (and one blur decision) for every frame of a sample."""
    import torch

    from etc.data.augment import PairedAugment
    from etc.data.clips import list_clips
    from etc.data.pairs import PairDataset

    clip = list_clips("synthetic", synthetic_tree, "train")[0]
    t = clip.labelled[0]
    aug = PairedAugment(crop=(32, 64), scale=(0.8, 1.3), rotation=10, hflip=True, blur_p=0.5)
    three = PairDataset("synthetic", [(clip, t, t + 1)], None, aug, third=True)
    mirrored = PairDataset("synthetic", [(clip, t, t - 1)], None, aug)
    for seed in range(4):
        a, b = three[(0, seed)], mirrored[(0, seed)]
        assert a["k_third"].item() == -1 and a["k"].item() == 1
        assert torch.equal(a["image_third"], b["image_n"]) and torch.equal(a["image_t"], b["image_t"])
    assert "image_third" not in PairDataset("synthetic", [(clip, t, t + 1)], None, aug)[(0, 0)]
