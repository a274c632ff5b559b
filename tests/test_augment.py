"""Paired augmentation keeps the flow consistent with both frames."""

import numpy as np
import pytest
import torch

from etc.data.augment import PairedAugment, affine_matrix, apply_affine
from etc.flow.warp import warp_labels


def _pair(shift=(3, -2), h=48, w=96, seed=0):
    """Frame n is frame t moved by an integer shift: F_{t→n} = shift everywhere."""
    rng = np.random.default_rng(seed)
    big_lab = np.kron(rng.integers(0, 8, (h // 8 + 2, w // 8 + 2)), np.ones((8, 8), np.int64)).astype(np.uint8)
    dx, dy = shift
    pad = 8
    lab_t = big_lab[pad:pad + h, pad:pad + w]
    lab_n = big_lab[pad - dy:pad - dy + h, pad - dx:pad - dx + w]  # content at p in t is at p+shift in n
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    img = lambda lab: np.repeat((lab * 30).astype(np.uint8)[..., None], 3, axis=2)  # noqa: E731
    return {"image_t": img(lab_t), "image_n": img(lab_n), "label_t": lab_t, "label_n": lab_n, "flow": flow}


def _agreement(sample):
    lab_t = torch.from_numpy(sample["label_t"].astype(np.int64))[None]
    lab_n = torch.from_numpy(sample["label_n"].astype(np.int64))[None]
    flow = torch.from_numpy(sample["flow"]).permute(2, 0, 1)[None]
    warped = warp_labels(lab_n, flow)[0]
    valid = torch.from_numpy(sample["valid"]) & (lab_t[0] != 255) & (warped != 255)
    assert valid.float().mean() > 0.5
    return (warped[valid] == lab_t[0][valid]).float().mean().item()


def test_unaugmented_pair_is_consistent():
    s = _pair()
    out = apply_affine(s, affine_matrix(48, 96, 1.0, 0.0, False, (0, 0)), (48, 96))
    assert _agreement(out) == 1.0


@pytest.mark.parametrize("flip", [False, True])
def test_flip_and_crop_are_exact(flip):
    s = _pair()
    out = apply_affine(s, affine_matrix(48, 96, 1.0, 0.0, flip, (5, 11)), (32, 64))
    assert out["flow"].shape == (32, 64, 2)
    assert np.all(out["flow"][..., 0] == (-3 if flip else 3))
    assert _agreement(out) == 1.0


@pytest.mark.parametrize("scale,angle", [(1.5, 0.0), (0.75, 0.0), (1.0, 10.0), (1.3, -8.0)])
def test_scale_and_rotation_keep_consistency(scale, angle):
    s = _pair(shift=(4, 3))
    m = affine_matrix(48, 96, scale, angle, True, (2, 3))
    out = apply_affine(s, m, (40, 80))
    # measured 0.92-1.0: nearest resampling of 8-px blocks differs only along region borders
    assert _agreement(out) > 0.9
    # the same frames with the flow vectors left as they were (not scaled/rotated/flipped):
    # measured 0.11-0.27
    untransformed = np.broadcast_to(s["flow"][:1, :1], out["flow"].shape).copy()
    assert _agreement(dict(out, flow=untransformed)) < 0.5


def test_random_augment_is_seeded():
    aug = PairedAugment(crop=(32, 64), scale=(0.8, 1.5), rotation=10, hflip=True)
    a = aug(_pair(), np.random.default_rng(7))
    b = aug(_pair(), np.random.default_rng(7))
    c = aug(_pair(), np.random.default_rng(8))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert a["image_t"].shape == (32, 64, 3)
    assert _agreement(a) > 0.9
