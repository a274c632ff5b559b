"""Demo video: frame count, size, decodability; the flicker map sees flicker and only flicker."""

import numpy as np
import torch

from etc.data.labels import palette
from etc.report.video import compose_frames, flicker_map, write_video


def _moving_clip(t_len=5, h=24, w=40, dx=2):
    rng = np.random.default_rng(0)
    big = np.kron(rng.integers(0, 5, (h // 4, (w + dx * t_len) // 4 + 1)), np.ones((4, 4), int)).astype(np.uint8)
    labels = np.stack([big[:, t * dx : t * dx + w] for t in range(t_len)])  # content moves left by dx
    # F_{t→t-1}: the point at p in frame t was at p + dx in frame t-1
    flow = torch.zeros(2, h, w)
    flow[0] = dx
    occ = np.zeros((h, w), bool)
    return labels, [(flow, occ)] * (t_len - 1)


def test_flicker_map_empty_for_consistent_and_not_for_flickering():
    labels, flows = _moving_clip()
    flow, occ = flows[0]
    assert not flicker_map(labels[0], labels[1], flow, occ).any()
    noisy = labels[1].copy()
    noisy[5:9, 5:9] = (noisy[5:9, 5:9] + 1) % 5
    assert flicker_map(labels[0], noisy, flow, occ)[5:9, 5:9].all()


def test_video_has_expected_frames_and_decodes(tmp_path):
    import imageio.v2 as imageio

    labels, flows = _moving_clip()
    images = np.repeat((labels * 40).astype(np.uint8)[..., None], 3, axis=3)
    preds = {"baseline": labels, "etc": labels}
    frames = list(compose_frames(images, preds, flows, palette("cityscapes"), upscale=2))
    assert len(frames) == 5
    out, gif = tmp_path / "demo.mp4", tmp_path / "demo.gif"
    write_video(frames, out, fps=5, gif=gif)
    reader = imageio.get_reader(out, format="FFMPEG")
    decoded = [f for f in reader]
    assert len(decoded) == 5 and decoded[0].shape == frames[0].shape
    assert frames[0].shape[0] % 2 == 0 and frames[0].shape[1] % 2 == 0
    assert len(imageio.mimread(gif)) == 5


def test_frames_of_different_sizes_are_a_clear_error():
    import pytest

    from etc.core.errors import EtcError

    labels, flows = _moving_clip()
    images = np.zeros((*labels.shape, 3), np.uint8)
    with pytest.raises(EtcError, match="different sizes"):
        list(compose_frames(images, {"a": labels[:, :10]}, flows, palette("cityscapes")))
