"""Loss terms: analytic zeros, monotonicity, masks, normalisation, gradients, invariances."""

import math

import pytest
import torch

from etc.errors import EtcError
from etc.losses import LOSS_TERMS, build_criterion
from etc.losses.affinity import cross_affinity, self_affinity
from etc.losses.ce import ce_loss
from etc.losses.mf import MultiFrameKD
from etc.losses.pa import pairwise_affinity_kd
from etc.losses.pf import pairwise_frame_kd
from etc.losses.pi import pixelwise_kd
from etc.losses.tl import temporal_loss, temporal_weight


def _shift(x, dx):
    """Content at column c of x appears at column c + dx (zero-filled)."""
    out = torch.zeros_like(x)
    out[..., dx:] = x[..., :-dx]
    return out


def _flow(b, h, w, dx):
    f = torch.zeros(b, 2, h, w)
    f[:, 0] = dx
    return f


# ---------------------------------------------------------------------------- TL


def test_tl_is_zero_for_exactly_moved_predictions_and_grows_with_inconsistency():
    torch.manual_seed(0)
    z_t = torch.randn(2, 4, 8, 12)
    z_n = _shift(z_t, 3)  # frame t+k is frame t moved right by 3 px: F_{t→t+k} = (+3, 0)
    flow = _flow(2, 8, 12, 3)
    raw = torch.rand(2, 3, 8, 12)
    weight = temporal_weight(raw, _shift(raw, 3), flow, "motion")
    assert (
        weight[..., 9:].eq(0).all() and weight[..., :9].gt(1 - 1e-5).all()
    )  # out of frame: no weight
    for on in ("probs", "logits"):
        assert temporal_loss(z_t, z_n, flow, weight, on) == pytest.approx(0.0, abs=1e-6)
    noise = torch.randn_like(z_n)
    losses = [temporal_loss(z_t, z_n + a * noise, flow, weight).item() for a in (0.1, 0.5, 2.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    # on logits the loss is exactly quadratic in the inconsistency
    l1, l2 = (temporal_loss(z_t, z_n + a * noise, flow, weight, "logits") for a in (0.5, 1.0))
    assert l2.item() == pytest.approx(4 * l1.item(), rel=1e-5)


def test_tl_ignores_subpixel_samples_outside_the_image():
    """Half a pixel past the border, bilinear sampling would mix in zero padding."""
    z = torch.zeros(1, 3, 6, 6)
    z[:, 0] = 5.0  # the same confident prediction everywhere: perfectly consistent
    flow = _flow(1, 6, 6, 0.5)
    weight = temporal_weight(torch.zeros(1, 3, 6, 6), torch.zeros(1, 3, 6, 6), flow, "none")
    assert weight[..., -1].eq(0).all() and weight[..., :-1].eq(1).all()
    assert temporal_loss(z, z, flow, weight) == pytest.approx(0.0, abs=1e-7)
    assert temporal_loss(z, z, flow, torch.ones(1, 6, 6)) > 0.01  # what the mask prevents


def test_tl_weights_remove_occluded_pixels():
    torch.manual_seed(0)
    z_t = torch.randn(1, 3, 6, 6)
    z_n = z_t.clone()
    z_n[..., 2:4, 2:4] = torch.randn(1, 3, 2, 2) * 5  # disagreement only in an "occluded" square
    flow = _flow(1, 6, 6, 0)
    occ = torch.zeros(1, 6, 6, dtype=torch.bool)
    occ[..., 2:4, 2:4] = True
    w_occ = temporal_weight(
        torch.zeros(1, 3, 6, 6), torch.zeros(1, 3, 6, 6), flow, "occlusion", occ
    )
    assert temporal_loss(z_t, z_n, flow, w_occ).item() == pytest.approx(0.0, abs=1e-9)
    assert temporal_loss(z_t, z_n, flow, torch.ones(1, 6, 6)) > 0.01  # unmasked: the square counts
    # the motion weight down-weights them where the warped image disagrees
    raw_t = torch.zeros(1, 3, 6, 6)
    raw_n = raw_t.clone()
    raw_n[..., 2:4, 2:4] = 1.0
    w_motion = temporal_weight(raw_t, raw_n, flow, "motion")
    w_none = temporal_weight(raw_t, raw_n, flow, "none")
    assert w_motion[0, 2, 2].item() == pytest.approx(math.exp(-1.0)) and w_motion[0, 0, 0] == 1
    full = temporal_loss(z_t, z_n, flow, w_none)
    assert temporal_loss(z_t, z_n, flow, w_motion).item() == pytest.approx(
        math.exp(-1.0) * full.item()
    )


def test_tl_divides_by_all_pixels_and_never_differentiates_the_flow():
    torch.manual_seed(0)
    z_t = torch.randn(1, 3, 4, 4, requires_grad=True)
    z_n = torch.randn(1, 3, 4, 4, requires_grad=True)
    flow = torch.zeros(1, 2, 4, 4, requires_grad=True)
    ones, half = torch.ones(1, 4, 4), torch.ones(1, 4, 4)
    half[..., 2:] = 0
    diff = (z_t.softmax(1) - z_n.softmax(1)).pow(2).sum(1)
    assert temporal_loss(z_t, z_n, flow, ones).item() == pytest.approx(diff.mean().item(), rel=1e-6)
    assert temporal_loss(z_t, z_n, flow, half).item() == pytest.approx(
        (diff * half).sum().item() / 16, rel=1e-6
    )
    temporal_loss(z_t, z_n, flow, ones).backward()
    assert z_t.grad.abs().sum() > 0 and z_n.grad.abs().sum() > 0 and flow.grad is None


def test_tl_unknown_switches_are_user_errors():
    z, flow = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    with pytest.raises(EtcError, match="tl_mask"):
        temporal_weight(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), flow, "occlusion", None)
    with pytest.raises(EtcError, match="tl_on"):
        temporal_loss(z, z, flow, torch.ones(1, 4, 4), "argmax")


# ---------------------------------------------------------------------------- CE, PI


def test_ce_ignores_255_adds_the_aux_share_and_survives_an_unlabelled_crop():
    logits = torch.zeros(1, 4, 2, 2)
    labels = torch.tensor([[[0, 255], [255, 255]]])
    assert ce_loss({"logits": logits}, labels, aux_weight=0.4).item() == pytest.approx(math.log(4))
    out = {"logits": logits, "aux": torch.zeros(1, 4, 2, 2)}
    assert ce_loss(out, labels, aux_weight=0.4).item() == pytest.approx(1.4 * math.log(4))
    none = ce_loss({"logits": logits.requires_grad_()}, torch.full((1, 2, 2), 255), aux_weight=0.4)
    assert none.item() == 0.0
    none.backward()


def test_pi_zero_for_identical_positive_otherwise_and_student_only_gradients():
    torch.manual_seed(0)
    z = torch.randn(2, 5, 4, 4)
    assert pixelwise_kd(z, z.clone(), temperature=3.0) == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(2, 5, 4, 4, requires_grad=True)
    t = torch.randn(2, 5, 4, 4, requires_grad=True)
    loss = pixelwise_kd(s, t, temperature=2.0)
    assert loss > 0
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


# ---------------------------------------------------------------------------- PF, PA


def test_affinities_are_true_cosines_in_range():
    torch.manual_seed(1)
    f1, f2 = torch.randn(2, 8, 12, 12), torch.randn(2, 8, 12, 12)
    a = cross_affinity(f1, f2, 6)
    assert a.shape == (2, 36, 36) and a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6
    n1 = torch.nn.functional.adaptive_avg_pool2d(f1, 6).flatten(2)[0, :, 0]  # node 0 of frame 1
    n2 = torch.nn.functional.adaptive_avg_pool2d(f2, 6).flatten(2)[0, :, 7]  # node 7 of frame 2
    assert a[0, 0, 7].item() == pytest.approx(
        torch.cosine_similarity(n1, n2, dim=0).item(), rel=1e-5
    )
    s = self_affinity(f1, 6)
    assert torch.allclose(s.diagonal(dim1=1, dim2=2), torch.ones(2, 36), atol=1e-5)


def test_pf_zero_for_identical_features_and_scale_invariant():
    torch.manual_seed(1)
    f1, f2 = torch.randn(2, 8, 12, 12), torch.randn(2, 8, 12, 12)
    assert pairwise_frame_kd(f1, f2, f1.clone(), f2.clone()) == pytest.approx(0.0, abs=1e-10)
    g1, g2 = torch.randn(2, 16, 12, 12), torch.randn(2, 16, 12, 12)  # the teacher: other channels
    base = pairwise_frame_kd(f1, f2, g1, g2)
    assert base > 0
    assert pairwise_frame_kd(3.7 * f1, 3.7 * f2, g1, g2).item() == pytest.approx(
        base.item(), rel=1e-5
    )
    assert pairwise_frame_kd(f1, f2, 0.01 * g1, 0.01 * g2).item() == pytest.approx(
        base.item(), rel=1e-5
    )


def test_pa_zero_for_identical_positive_otherwise():
    torch.manual_seed(2)
    f, g = torch.randn(2, 8, 12, 12), torch.randn(2, 4, 12, 12)
    assert pairwise_affinity_kd(f, 5 * f) == pytest.approx(0.0, abs=1e-10)
    assert pairwise_affinity_kd(f, g) > 0


# ---------------------------------------------------------------------------- MF


def test_mf_zero_for_identical_inputs_and_deterministic_for_a_seed():
    torch.manual_seed(3)
    feats = [torch.randn(2, 8, 12, 12) for _ in range(3)]
    other = [torch.randn(2, 4, 12, 12) for _ in range(3)]
    assert MultiFrameKD(nodes=6, seed=0)(feats, [f.clone() for f in feats]) == pytest.approx(
        0.0, abs=1e-12
    )
    a = MultiFrameKD(nodes=6, seed=0)(feats, other)
    b = MultiFrameKD(nodes=6, seed=0)(feats, other)
    c = MultiFrameKD(nodes=6, seed=1)(feats, other)
    assert a > 0 and torch.equal(a, b) and not torch.equal(a, c)


def test_mf_leaves_the_global_rng_alone_and_is_fixed_unless_trained():
    torch.manual_seed(4)
    expected = torch.rand(3)
    torch.manual_seed(4)
    fixed = MultiFrameKD(seed=0)
    assert torch.equal(torch.rand(3), expected)
    assert not any(p.requires_grad for p in fixed.parameters())
    trained = MultiFrameKD(seed=0, trained=True)
    s = [torch.randn(1, 8, 6, 6, requires_grad=True) for _ in range(2)]
    t = [torch.randn(1, 8, 6, 6, requires_grad=True) for _ in range(2)]
    trained(s, t).backward()
    assert all(p.grad is not None for p in trained.parameters())
    assert all(x.grad is not None for x in s) and all(x.grad is None for x in t)


# ---------------------------------------------------------------------------- criterion


def _outputs(b=2, k=4, h=16, w=16, c=8, grad=False):
    return {
        "logits": torch.randn(b, k, h, w, requires_grad=grad),
        "feat": torch.randn(b, c, h // 8 * 4, w // 8 * 4, requires_grad=grad),
        "aux": torch.randn(b, k, h, w, requires_grad=grad),
    }


def _batch(k=(1, -2)):
    return {
        "label_t": torch.randint(0, 4, (2, 16, 16)),
        "raw_t": torch.rand(2, 3, 16, 16),
        "raw_n": torch.rand(2, 3, 16, 16),
        "flow": torch.randn(2, 2, 16, 16),
        "occ": torch.zeros(2, 16, 16, dtype=torch.bool),
        "k": torch.tensor(k),
    }


@pytest.mark.parametrize("term", sorted(LOSS_TERMS))
def test_criterion_computes_each_term_with_student_only_gradients(term):
    torch.manual_seed(0)
    crit = build_criterion({"ce": 1.0, term: 2.0}, {"pool_nodes": 4, "temperature": 2.0}, aux_weight=0.4)
    s_t, s_n = _outputs(grad=True), _outputs(grad=True)
    t_t, t_n = _outputs(c=12, grad=True), _outputs(c=12, grad=True)  # the teacher, other width
    out = crit(s_t, s_n, t_t, t_n, _batch())
    assert set(out) == {"ce", term, "total"} and out[term] > 0
    assert out["total"].item() == pytest.approx(sum(out[k].item() for k in {"ce", term}), rel=1e-5)
    out["total"].backward()
    assert s_t["logits"].grad is not None
    assert all(v.grad is None for o in (t_t, t_n) for v in o.values())
    assert crit.needs_teacher == LOSS_TERMS[term].needs_teacher


def test_criterion_weights_and_time_order():
    torch.manual_seed(0)
    s_t, s_n, t_t, t_n, batch = _outputs(), _outputs(), _outputs(c=12), _outputs(c=12), _batch()
    one = build_criterion({"ce": 1.0, "mf": 1.0}, {}, aux_weight=0.4)(s_t, s_n, t_t, t_n, batch)
    three = build_criterion({"ce": 1.0, "mf": 3.0}, {}, aux_weight=0.4)(s_t, s_n, t_t, t_n, batch)
    assert three["mf"].item() == pytest.approx(3 * one["mf"].item(), rel=1e-6)
    # MF sees the frames in time order: swapping t and n with k negated changes nothing
    swapped = {**batch, "k": -batch["k"]}
    again = build_criterion({"mf": 1.0}, {}, aux_weight=0.4)(s_n, s_t, t_n, t_t, swapped)
    assert again["mf"].item() == pytest.approx(one["mf"].item(), rel=1e-6)


def test_unknown_term_is_named_with_the_known_ones():
    with pytest.raises(
        EtcError, match=r"unknown loss term\(s\) \['magic'\].*known: ce, tl, pi, pf, mf, pa"
    ):
        build_criterion({"ce": 1, "magic": 1}, {}, aux_weight=0.4)


def test_missing_teacher_or_neighbour_is_a_caller_bug():
    s = _outputs()
    with pytest.raises(ValueError, match="'pi' needs teacher outputs"):
        build_criterion({"ce": 1, "pi": 1}, {}, aux_weight=0.4)(s, None, None, None, _batch())
    with pytest.raises(ValueError, match="'tl' needs student neighbour outputs"):
        build_criterion({"ce": 1, "tl": 1}, {}, aux_weight=0.4)(s, None, None, None, _batch())
    crit = build_criterion({"ce": 1, "tl": 0}, {}, aux_weight=0.4)  # a zero weight drops the term
    assert not crit.needs_neighbour and set(crit(s, None, None, None, _batch())) == {"ce", "total"}
