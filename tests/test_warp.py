import torch

from etc.flow.warp import fb_occlusion, out_of_frame, resize_flow, warp_backward, warp_labels


def _const_flow(h, w, dx, dy, b=1):
    f = torch.zeros(b, 2, h, w)
    f[:, 0], f[:, 1] = dx, dy
    return f


def test_integer_translation_is_an_exact_shift():
    x = torch.rand(2, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    out = warp_backward(x, _const_flow(10, 12, 3, -2, b=2))
    # out(y, x) = in(y - 2, x + 3) where inside; exact up to float32 rounding of the grid
    # normalisation (about 1e-7 per coordinate: a few 1e-6 at most on values in [0, 1]), and
    # exactly so for labels (nearest)
    assert torch.allclose(out[:, :, 2:, :9], x[:, :, :8, 3:], atol=1e-5, rtol=0)
    assert out[:, :, :2].abs().max() < 1e-6 and out[:, :, :, 9:].abs().max() < 1e-6
    labels = torch.randint(0, 7, (2, 10, 12))
    assert torch.equal(warp_labels(labels, _const_flow(10, 12, 3, -2, b=2))[:, 2:, :9], labels[:, :8, 3:])


def test_nearest_warping_never_invents_labels():
    labels = torch.randint(0, 4, (1, 16, 16)) * 5  # values {0,5,10,15}
    flow = torch.randn(1, 2, 16, 16) * 3
    warped = warp_labels(labels, flow)
    assert set(warped.unique().tolist()) <= {0, 5, 10, 15, 255}
    assert (warped == 255).equal(out_of_frame(flow))


def test_fb_occlusion_marks_disagreeing_and_leaving_pixels():
    fw = _const_flow(8, 8, 2, 0)
    bw = _const_flow(8, 8, -2, 0)
    occ = fb_occlusion(fw, bw)[0]
    assert occ[:, 6:].all() and not occ[:, :6].any()  # only pixels leaving the frame
    bad_bw = bw.clone()
    bad_bw[:, :, 3, 4] = 5.0  # the point (3,2) comes back wrong
    assert fb_occlusion(fw, bad_bw)[0, 3, 2]


def test_resize_flow_rescales_vectors():
    f = _const_flow(8, 10, 2.0, -1.0)
    r = resize_flow(f, (16, 5))
    assert r.shape == (1, 2, 16, 5)
    assert torch.allclose(r[:, 0], torch.full((1, 16, 5), 1.0)) and torch.allclose(r[:, 1], torch.full((1, 16, 5), -2.0))


def test_half_pixel_ties_round_up_and_the_border_is_decided_on_the_same_pixel():
    """x + F = k + ½ samples pixel k + 1 for every k (float16 flow lands on halves; grid_sample
    broke such ties both ways along one row); −0.5 rounds to pixel 0 (inside, and that pixel's
    label is returned); −0.51 is outside."""
    import math

    labels = torch.arange(12).view(1, 1, 12).expand(1, 3, 12).contiguous()
    for dx in (0.5, -0.5, 1.5, 2.5, -1.5, -0.51, 0.49):
        flow = _const_flow(3, 12, dx, 0)
        source = [j + math.floor(dx + 0.5) for j in range(12)]
        expected = [s if 0 <= s <= 11 else 255 for s in source]
        assert warp_labels(labels, flow)[0, 0].tolist() == expected, dx
        assert out_of_frame(flow)[0, 0].tolist() == [e == 255 for e in expected], dx
