"""etc.infer.upsample_argmax: the labels of the full bilinear upsampling, computed from the coarse
scores, on every path (uniform cells, blended blocks, the fallbacks)."""

import pytest
import torch
import torch.nn.functional as F

from etc.infer.upsample_argmax import MAX_BLOCK_WORK, reference_labels, upsample_argmax


def smooth_scores(b, k, h, w, blobs, seed=0, channels_last=True):
    """Scores whose argmax forms regions about ``h / blobs`` cells wide, like a network's."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(b, k, blobs, blobs + 1, generator=g) * 3
    low = F.interpolate(coarse, (h, w), mode="bilinear", align_corners=False)
    return low.contiguous(memory_format=torch.channels_last) if channels_last else low


@pytest.mark.parametrize("b,k,h,w,size", [
    (2, 19, 16, 24, (128, 192)),  # stride 8 (PSPNet)
    (2, 5, 12, 20, (48, 80)),  # stride 4 (the zoo's decoders)
    (1, 3, 5, 4, (10, 8)),  # stride 2, a grid narrower than a block
    (2, 4, 1, 1, (8, 8)),  # one coarse cell: every block is a border block
    (1, 300, 4, 6, (32, 48)),  # more classes than uint8 holds
])
def test_same_labels_as_the_full_upsampling(b, k, h, w, size):
    for layout in (True, False):
        low = smooth_scores(b, k, h, w, blobs=3, channels_last=layout)
        got = upsample_argmax(low, size)
        assert got.shape == (b, *size) and got.dtype == (torch.uint8 if k <= 256 else torch.int64)
        assert torch.equal(got.long(), reference_labels(low, size))


def test_uniform_cells_take_their_corner_label_and_blend_only_at_boundaries():
    """Two classes split by a vertical line at a coarse column: every output pixel left of the
    blended band is class 0, right of it class 1, and the boundary falls where the bilinear
    scores cross (here exactly half way between the two coarse centres)."""
    low = torch.zeros(1, 2, 4, 6)
    low[0, 0, :, :3], low[0, 1, :, 3:] = 1.0, 1.0  # class 0 left, class 1 right
    got = upsample_argmax(low, (32, 48))
    # coarse centres 2 and 3 sit at output x = 19.5 and 27.5; the scores tie at 23.5
    assert (got[:, :, :24] == 0).all() and (got[:, :, 24:] == 1).all()
    assert torch.equal(got.long(), reference_labels(low, (32, 48)))


def test_ties_go_to_the_first_class_as_with_argmax():
    low = smooth_scores(2, 6, 8, 10, blobs=3)
    low[:, 4] = low[:, 1]  # class 4 ties with class 1 everywhere: it must never win
    got = upsample_argmax(low, (64, 80))
    assert not (got == 4).any() and torch.equal(got.long(), reference_labels(low, (64, 80)))


def test_scales_that_are_not_even_integers_fall_back_to_the_reference():
    low = smooth_scores(1, 5, 6, 7, blobs=2)
    for size in [(18, 21), (17, 20), (6, 7), (40, 50)]:  # odd, non-integer, 1, non-integer
        assert torch.equal(upsample_argmax(low, size).long(), reference_labels(low, size))


def test_busy_scores_take_the_full_computation_and_agree(monkeypatch):
    """Where almost every cell is mixed the blocks would cost more: same labels either way."""
    import etc.infer.upsample_argmax as ua

    calls = []
    monkeypatch.setattr(ua, "reference_labels", lambda low, size: calls.append(size) or reference_labels(low, size))
    noise = torch.randn(2, 19, 16, 16, generator=torch.Generator().manual_seed(1))
    assert MAX_BLOCK_WORK < 1
    assert torch.equal(upsample_argmax(noise, (128, 128)).long(), reference_labels(noise, (128, 128)))
    assert calls == [(128, 128)]
    calls.clear()
    upsample_argmax(smooth_scores(2, 19, 16, 16, blobs=3), (128, 128))
    assert calls == []  # smooth scores: blocks only


def test_bf16_scores_are_reduced_in_float32():
    low = smooth_scores(1, 7, 8, 8, blobs=2).bfloat16()
    assert torch.equal(upsample_argmax(low, (64, 64)).long(), reference_labels(low.float(), (64, 64)))


def test_blocks_agree_on_random_scores_of_every_busyness(monkeypatch):
    """Blocks forced for any busyness (no fallback): groups of one cell, cells with every class
    a candidate, grids of one row."""
    import etc.infer.upsample_argmax as ua

    monkeypatch.setattr(ua, "MAX_BLOCK_WORK", float("inf"))
    g = torch.Generator().manual_seed(2)
    for n in range(40):
        k, h, w = 2 + n % 6, 1 + n % 4, 1 + (n * 7) % 5
        low = torch.randn(1 + n % 2, k, h, w, generator=g) * (0.1 if n % 3 else 3.0)
        size = (h * (2 + 2 * (n % 2)), w * 4)
        assert torch.equal(upsample_argmax(low, size).long(), reference_labels(low, size)), n
