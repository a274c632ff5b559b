"""Loss terms: analytic zeros, monotonicity, masks, gradients, invariances."""

import pytest
import torch

from etc.errors import EtcError
from etc.losses import build_criterion
from etc.losses.distill import (
    MultiFrameKD,
    cross_affinity,
    pairwise_affinity_kd,
    pairwise_frame_kd,
    pixelwise_kd,
)
from etc.losses.temporal import temporal_loss, temporal_weight


def _shift(x, dx):
    """Content at column c of x appears at column c + dx (zero-filled)."""
    out = torch.zeros_like(x)
    out[..., dx:] = x[..., :-dx]
    return out


def _flow(b, h, w, dx):
    f = torch.zeros(b, 2, h, w)
    f[:, 0] = dx
    return f


def test_tl_is_zero_for_exactly_moved_predictions_and_grows_with_inconsistency():
    torch.manual_seed(0)
    z_t = torch.randn(2, 4, 8, 12)
    z_n = _shift(z_t, 3)  # frame t+k is frame t moved right by 3 px
    flow = _flow(2, 8, 12, 3)
    raw = torch.rand(2, 3, 8, 12)
    weight = temporal_weight(raw, _shift(raw, 3), flow, "motion")
    assert weight[..., 9:].eq(0).all()  # samples outside the image carry no weight
    assert temporal_loss(z_t, z_n, flow, weight) == pytest.approx(0.0, abs=1e-6)
    previous = 0.0
    for noise in (0.1, 0.5, 2.0):
        z = z_n + noise * torch.randn_like(z_n)
        loss = temporal_loss(z_t, z, flow, weight).item()
        assert loss > previous
        previous = loss


def test_tl_weights_remove_occluded_pixels():
    z_t = torch.randn(1, 3, 6, 6)
    z_n = z_t.clone()
    z_n[..., 2:4, 2:4] = torch.randn(1, 3, 2, 2) * 5  # disagreement only in an "occluded" square
    flow = _flow(1, 6, 6, 0)
    occ = torch.zeros(1, 6, 6, dtype=torch.bool)
    occ[..., 2:4, 2:4] = True
    w_occ = temporal_weight(torch.zeros(1, 3, 6, 6), torch.zeros(1, 3, 6, 6), flow, "occlusion", occ)
    assert temporal_loss(z_t, z_n, flow, w_occ).item() == pytest.approx(0.0, abs=1e-9)
    assert temporal_loss(z_t, z_n, flow, torch.ones(1, 6, 6)) > 0.01  # unmasked: the square counts
    # the motion weight down-weights them when the warped image disagrees there
    raw_t = torch.zeros(1, 3, 6, 6)
    raw_n = raw_t.clone()
    raw_n[..., 2:4, 2:4] = 1.0
    w_motion = temporal_weight(raw_t, raw_n, flow, "motion")
    w_none = temporal_weight(raw_t, raw_n, flow, "none")
    assert temporal_loss(z_t, z_n, flow, w_motion) < temporal_loss(z_t, z_n, flow, w_none)
    assert w_motion[0, 2, 2] == pytest.approx(torch.exp(torch.tensor(-1.0)).item())


def test_pi_zero_for_identical_positive_otherwise_and_student_only_gradients():
    z = torch.randn(2, 5, 4, 4)
    assert pixelwise_kd(z, z.clone()) == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(2, 5, 4, 4, requires_grad=True)
    t = torch.randn(2, 5, 4, 4, requires_grad=True)
    loss = pixelwise_kd(s, t, temperature=2.0)
    assert loss > 0
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_pf_affinities_in_range_zero_for_identical_and_scale_invariant():
    torch.manual_seed(1)
    f1, f2 = torch.randn(2, 8, 12, 12), torch.randn(2, 8, 12, 12)
    a = cross_affinity(f1, f2, 6)
    assert a.shape == (2, 36, 36) and a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6
    assert pairwise_frame_kd(f1, f2, f1.clone(), f2.clone()) == pytest.approx(0.0, abs=1e-10)
    g1, g2 = torch.randn(2, 16, 12, 12), torch.randn(2, 16, 12, 12)  # another channel count
    base = pairwise_frame_kd(f1, f2, g1, g2)
    assert base > 0
    assert pairwise_frame_kd(3.7 * f1, 3.7 * f2, g1, g2) == pytest.approx(base.item(), rel=1e-5)
    assert pairwise_affinity_kd(f1, f1) == pytest.approx(0.0, abs=1e-10)


def test_mf_zero_for_identical_inputs_and_deterministic():
    feats = [torch.randn(2, 8, 12, 12) for _ in range(3)]
    mf = MultiFrameKD(nodes=6, seed=0)
    assert mf(feats, [f.clone() for f in feats]) == pytest.approx(0.0, abs=1e-12)
    other = [torch.randn(2, 4, 12, 12) for _ in range(3)]
    a = MultiFrameKD(nodes=6, seed=0)(feats, other)
    b = MultiFrameKD(nodes=6, seed=0)(feats, other)
    assert a > 0 and torch.equal(a, b)
    assert not any(p.requires_grad for p in MultiFrameKD(seed=0).parameters())
    assert all(p.requires_grad for p in MultiFrameKD(seed=0, trained=True).parameters())


def _outputs(b=2, k=4, h=16, w=16, c=8, grad=False):
    out = {"logits": torch.randn(b, k, h, w, requires_grad=grad), "feat": torch.randn(b, c, h // 8 * 4, w // 8 * 4, requires_grad=grad),
           "aux": torch.randn(b, k, h, w, requires_grad=grad)}
    return out


@pytest.mark.parametrize("terms", [{"ce": 1}, {"ce": 1, "tl": 1}, {"ce": 1, "pi": 1}, {"ce": 1, "pf": 1},
                                   {"ce": 1, "mf": 1}, {"ce": 1, "pa": 1}, {"ce": 1, "tl": 1, "pi": 1, "pf": 1, "mf": 1}])
def test_criterion_computes_every_term_with_student_gradients(terms):
    torch.manual_seed(0)
    crit = build_criterion(terms, {"pool_nodes": 4, "temperature": 2.0})
    s_t, s_n, t_t, t_n = _outputs(grad=True), _outputs(grad=True), _outputs(c=12), _outputs(c=12)
    batch = {"label_t": torch.randint(0, 4, (2, 16, 16)), "raw_t": torch.rand(2, 3, 16, 16), "raw_n": torch.rand(2, 3, 16, 16),
             "flow": torch.zeros(2, 2, 16, 16), "occ": torch.zeros(2, 16, 16, dtype=torch.bool), "k": torch.tensor([1, -2])}
    out = crit(s_t, s_n, t_t, t_n, batch)
    assert set(out) == set(terms) | {"total"}
    assert out["total"].item() == pytest.approx(sum(out[k].item() for k in terms), rel=1e-5)
    out["total"].backward()
    assert s_t["logits"].grad is not None


def test_unknown_term_is_named():
    with pytest.raises(EtcError, match=r"unknown loss term\(s\) \['magic'\]"):
        build_criterion({"ce": 1, "magic": 1}, {})
