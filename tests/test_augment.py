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


def test_rotation_probability():
    """rotation_p: the share of samples rotated at all (the reference: 0.5); 1 = always."""
    def rotated(p, seed):
        m, _ = PairedAugment(rotation=10, rotation_p=p).sample_transform(np.random.default_rng(seed), 48, 96)
        return abs(m[0, 1]) > 1e-9

    shares = {p: np.mean([rotated(p, s) for s in range(300)]) for p in (0.0, 0.5, 1.0)}
    assert shares[0.0] == 0.0 and shares[1.0] == 1.0 and 0.4 < shares[0.5] < 0.6


def test_blur_is_the_same_5x5_gaussian_on_every_frame_and_leaves_labels_and_flow():
    s = _pair()
    s["image_n"] = s["image_t"].copy()
    plain = PairedAugment(crop=(32, 64), rotation=5, hflip=True)(s, np.random.default_rng(3))
    blurred = PairedAugment(crop=(32, 64), rotation=5, hflip=True, blur_p=1.0)(s, np.random.default_rng(3))
    assert np.array_equal(blurred["image_t"], blurred["image_n"])  # one decision for the clip
    assert not np.array_equal(blurred["image_t"], plain["image_t"])
    for key in ("label_t", "label_n", "flow", "valid"):  # the same geometric draw; no blur there
        assert np.array_equal(blurred[key], plain[key])
    # the kernel of cv2.GaussianBlur(img, (5, 5), 0), the reference's call: cv2's fixed 5-tap
    # kernel for sigma 0, the binomial [1 4 6 4 1] / 16, in x and in y
    from etc.data.augment import blur_images

    delta = np.zeros((9, 9, 3), np.float32)
    delta[4, 4] = 1.0
    g = np.array([1, 4, 6, 4, 1]) / 16
    out = blur_images({"image_t": delta, "label_t": delta[..., 0]}, 5)
    assert np.allclose(out["image_t"][2:7, 2:7, 0], np.outer(g, g), atol=1e-6)
    assert np.array_equal(out["label_t"], delta[..., 0])


def test_padding_with_the_imagenet_mean_and_ignore_labels():
    s = _pair()
    m = affine_matrix(48, 96, 1.0, 30.0, False, (0, 0))  # rotating brings in corners from outside
    mean = apply_affine(s, m, (48, 96), (0.485 * 255, 0.456 * 255, 0.406 * 255))
    black = apply_affine(s, m, (48, 96))
    assert tuple(mean["image_t"][0, 0]) == (124, 116, 104) and tuple(black["image_t"][0, 0]) == (0, 0, 0)
    assert mean["label_t"][0, 0] == 255 and not mean["valid"][0, 0]
    cfg = {"rotation": 10, "rotation_p": 0.5, "blur_p": 0.5, "blur_kernel": 7, "pad_image": "imagenet_mean"}
    assert PairedAugment.from_config(cfg) == PairedAugment(None, (1.0, 1.0), 10.0, False, 0.5, 0.5, 7, "imagenet_mean")
