"""Loss terms: analytic zeros, monotonicity, masks, normalisation, gradients, invariances."""

import math

import pytest
import torch

from etc.core.errors import EtcError
from etc.losses import LOSS_TERMS, build_criterion
from etc.losses.affinity import cross_affinity, reference_cross_affinity, self_affinity
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
    crit = build_criterion({"ce": 1.0, term: 2.0}, {"pool_nodes": 4, "temperature": 2.0, "mf_frames": 3}, aux_weight=0.4)
    s_t, s_n, s_3 = _outputs(grad=True), _outputs(grad=True), _outputs(grad=True)
    t_t, t_n, t_3 = (_outputs(c=12, grad=True) for _ in range(3))  # the teacher, other width
    third = {"out_3": s_3, "tout_3": t_3} if crit.needs_third else {}
    out = crit(s_t, s_n, t_t, t_n, {**_batch(), "k_third": torch.tensor([-1, 2])}, **third)
    assert set(out) == {"ce", term, "total"} and out[term] > 0
    assert out["total"].item() == pytest.approx(sum(out[k].item() for k in {"ce", term}), rel=1e-5)
    out["total"].backward()
    assert s_t["logits"].grad is not None
    assert all(v.grad is None for o in (t_t, t_n, t_3) for v in o.values())
    assert crit.needs_third == (term == "mf")  # MF over three frames when asked, as the reference
    assert crit.needs_teacher == LOSS_TERMS[term].needs_teacher


def test_criterion_weights_and_time_order():
    torch.manual_seed(0)
    s_t, s_n, t_t, t_n, batch = _outputs(), _outputs(), _outputs(c=12), _outputs(c=12), _batch()
    pair = {"mf_frames": 2}
    one = build_criterion({"ce": 1.0, "mf": 1.0}, pair, aux_weight=0.4)(s_t, s_n, t_t, t_n, batch)
    three = build_criterion({"ce": 1.0, "mf": 3.0}, pair, aux_weight=0.4)(s_t, s_n, t_t, t_n, batch)
    assert three["mf"].item() == pytest.approx(3 * one["mf"].item(), rel=1e-6)
    # MF sees the frames in time order: swapping t and n with k negated changes nothing
    swapped = {**batch, "k": -batch["k"]}
    again = build_criterion({"mf": 1.0}, pair, aux_weight=0.4)(s_n, s_t, t_n, t_t, swapped)
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


# ---------------------------------------------------------------------------- reference forms
# Each test writes the reference code's formula out by hand (loops over plain Python numbers,
# from model/flow_model.py and util/crit.py of the reference repository) and pins the
# `reference` form to it on a small fixed input.

IMNET_MEAN, IMNET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _reference_criterion(term, **settings):
    return build_criterion({term: 1.0}, {f"{term}_form": "reference", **settings}, aux_weight=0.4)


def test_tl_reference_form_is_the_reference_codes_value():
    """mean over B·C·H·W of (V z_t − V warp(z_n))², V = exp(−|Σ_c (x_t − warp(x_n))|) of
    ImageNet-normalised images, warping clamped at the border (Resample2d)."""
    torch.manual_seed(5)
    b, c, h, w = 2, 3, 3, 4
    z_t, z_n = torch.randn(b, c, h, w), torch.randn(b, c, h, w)
    raw_t, raw_n = torch.rand(b, 3, h, w), torch.rand(b, 3, h, w)
    flow = torch.zeros(b, 2, h, w)
    flow[:, 0] = 1.0  # x + 1: the last column samples outside, clamped to the last column
    flow[1, 1, 0, :] = -2.0  # sample 1, top row: y − 2, clamped to row 0
    total = 0.0
    for i in range(b):
        for y in range(h):
            for x in range(w):
                sx = min(max(x + int(flow[i, 0, y, x]), 0), w - 1)
                sy = min(max(y + int(flow[i, 1, y, x]), 0), h - 1)
                d = sum((raw_t[i, ch, y, x].item() - IMNET_MEAN[ch]) / IMNET_STD[ch]
                        - (raw_n[i, ch, sy, sx].item() - IMNET_MEAN[ch]) / IMNET_STD[ch] for ch in range(3))
                v = math.exp(-abs(d))
                for k in range(c):
                    total += (v * z_t[i, k, y, x].item() - v * z_n[i, k, sy, sx].item()) ** 2
    expected = total / (b * c * h * w)
    batch = {"raw_t": raw_t, "raw_n": raw_n, "flow": flow}
    crit = _reference_criterion("tl", tl_on="logits", tl_mask="motion")
    got = crit({"logits": z_t}, {"logits": z_n}, None, None, batch)["tl"]
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # the etc form of the same input is another number: V in [0, 1] space, no V², sum over C
    etc = build_criterion({"tl": 1.0}, {"tl_on": "logits"}, 0.4)({"logits": z_t}, {"logits": z_n}, None, None, batch)
    assert etc["tl"].item() != pytest.approx(expected, rel=0.05)


def test_tl_reference_form_bilinear_between_pixels():
    """Half a pixel to the right: the warped value is the mean of the two neighbours."""
    z_t, z_n = torch.zeros(1, 1, 1, 3), torch.tensor([[[[1.0, 3.0, 7.0]]]])
    flow = torch.zeros(1, 2, 1, 3)
    flow[:, 0] = 0.5
    raw = torch.full((1, 3, 1, 3), 0.5)  # constant images: V = 1
    crit = _reference_criterion("tl", tl_on="logits", tl_mask="motion")
    got = crit({"logits": z_t}, {"logits": z_n}, None, None, {"raw_t": raw, "raw_n": raw, "flow": flow})["tl"]
    assert got.item() == pytest.approx((2.0**2 + 5.0**2 + 7.0**2) / 3, rel=1e-6)  # x=2 clamps to 7


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_pi_reference_form_is_kldivloss_mean_summed_over_the_two_frames():
    torch.manual_seed(6)
    b, c, h, w = 2, 5, 2, 3
    s_t, s_n, t_t, t_n = (torch.randn(b, c, h, w) for _ in range(4))

    def kl_mean(s, t):  # nn.KLDivLoss() default: pointwise target·(log target − input), mean of all
        total = 0.0
        for i in range(b):
            for y in range(h):
                for x in range(w):
                    zs, zt = s[i, :, y, x].tolist(), t[i, :, y, x].tolist()
                    ls = [v - math.log(sum(math.exp(u) for u in zs)) for v in zs]
                    lt = [v - math.log(sum(math.exp(u) for u in zt)) for v in zt]
                    total += sum(math.exp(a) * (a - q) for a, q in zip(lt, ls, strict=True))
        return total / (b * c * h * w)

    expected = kl_mean(s_t, t_t) + kl_mean(s_n, t_n)
    crit = _reference_criterion("pi", temperature=1.0)
    got = crit({"logits": s_t}, {"logits": s_n}, {"logits": t_t}, {"logits": t_n}, {})["pi"]
    assert got.item() == pytest.approx(expected, rel=1e-5)
    kld = torch.nn.KLDivLoss(reduction="mean")  # the reference's call, as the library defines it
    lib = sum(kld(torch.log_softmax(s, 1), torch.softmax(t, 1)) for s, t in ((s_t, t_t), (s_n, t_n)))
    assert got.item() == pytest.approx(lib.item(), rel=1e-5)
    # the etc form is (C/2)× the reference at τ = 1 (per-pixel KL, frames averaged)
    etc = build_criterion({"pi": 1.0}, {"temperature": 1.0}, 0.4)(
        {"logits": s_t}, {"logits": s_n}, {"logits": t_t}, {"logits": t_n}, {})["pi"]
    assert etc.item() == pytest.approx(c / 2 * expected, rel=1e-5)


def test_pf_reference_form_has_the_reference_codes_swapped_norms():
    """A_ij = <f_t^i, f_n^j> / (‖f_n^i‖ ‖f_t^j‖) (Cos_Attn_no), mean (A_S − A_T)² over B·M·M.
    Features of 2×2 pooled to 2×2 nodes: each node is a pixel."""
    torch.manual_seed(7)
    fs_t, fs_n, ft_t, ft_n = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2), torch.randn(2, 5, 2, 2), torch.randn(2, 5, 2, 2)

    def affinity(a, n, i):
        q = a[i].flatten(1).T.tolist()  # M×C nodes of frame t
        p = n[i].flatten(1).T.tolist()  # of frame t+k
        norm = [math.sqrt(sum(v * v for v in row)) for row in q], [math.sqrt(sum(v * v for v in row)) for row in p]
        return [[sum(x * y for x, y in zip(q[r], p[s], strict=True)) / (norm[1][r] * norm[0][s])
                 for s in range(4)] for r in range(4)]

    total = 0.0
    for i in range(2):
        a_s, a_t = affinity(fs_t, fs_n, i), affinity(ft_t, ft_n, i)
        total += sum((a_s[r][s] - a_t[r][s]) ** 2 for r in range(4) for s in range(4))
    expected = total / (2 * 16)
    crit = _reference_criterion("pf", pool_nodes=2)
    got = crit({"feat": fs_t}, {"feat": fs_n}, {"feat": ft_t}, {"feat": ft_n}, {})["pf"]
    assert got.item() == pytest.approx(expected, rel=1e-5)
    etc = build_criterion({"pf": 1.0}, {"pool_nodes": 2}, 0.4)(
        {"feat": fs_t}, {"feat": fs_n}, {"feat": ft_t}, {"feat": ft_n}, {})["pf"]
    assert etc.item() != pytest.approx(expected, rel=0.01)
    # on one frame against itself the two forms agree: the swap only matters across frames
    assert cross_affinity(fs_t, fs_t, 2).allclose(reference_cross_affinity(fs_t, fs_t, 2), atol=1e-6)


def test_pa_reference_form_adds_each_other_frame_at_0_4():
    """CriterionSDcos_self: loss_t + 0.4 (loss_t−k + loss_t+k), each the mean over B·M·M of the
    squared difference of true-cosine self-affinities."""
    torch.manual_seed(8)
    fs = [torch.randn(1, 3, 2, 2) for _ in range(3)]
    ft = [torch.randn(1, 4, 2, 2) for _ in range(3)]

    def one(s, t):
        def cos(f):
            rows = f[0].flatten(1).T.tolist()
            n = [math.sqrt(sum(v * v for v in r)) for r in rows]
            return [[sum(x * y for x, y in zip(rows[a], rows[b], strict=True)) / (n[a] * n[b]) for b in range(4)] for a in range(4)]
        cs, ct = cos(s), cos(t)
        return sum((cs[a][b] - ct[a][b]) ** 2 for a in range(4) for b in range(4)) / 16

    expected = one(fs[0], ft[0]) + 0.4 * (one(fs[1], ft[1]) + one(fs[2], ft[2]))
    crit = _reference_criterion("pa", pool_nodes=2)
    o = [{"feat": f} for f in fs]
    t = [{"feat": f} for f in ft]
    got = crit(o[0], o[1], t[0], t[1], {}, out_3=o[2], tout_3=t[2])["pa"]
    assert got.item() == pytest.approx(expected, rel=1e-5)
    alone = crit(o[0], None, t[0], None, {})["pa"]  # an ablation that runs frame t only
    assert alone.item() == pytest.approx(one(fs[0], ft[0]), rel=1e-5)


def test_ce_class_weights_are_the_weighted_mean_of_crossentropyloss():
    torch.manual_seed(9)
    logits, aux = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2)
    labels = torch.tensor([[[0, 2], [255, 2]]])
    w = [0.5, 1.0, 2.0]

    def weighted(z):
        num = den = 0.0
        for y in range(2):
            for x in range(2):
                lab = int(labels[0, y, x])
                if lab == 255:
                    continue
                col = z[0, :, y, x].tolist()
                ce = math.log(sum(math.exp(v) for v in col)) - col[lab]
                num, den = num + w[lab] * ce, den + w[lab]
        return num / den

    crit = build_criterion({"ce": 1.0}, {"ce_weights": w}, aux_weight=0.4)
    got = crit({"logits": logits, "aux": aux}, None, None, None, {"label_t": labels})["ce"]
    assert got.item() == pytest.approx(weighted(logits) + 0.4 * weighted(aux), rel=1e-5)
    lib = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=255)  # CriterionDSN's
    assert got.item() == pytest.approx(lib(logits, labels).item() + 0.4 * lib(aux, labels).item(), rel=1e-5)
    none = crit({"logits": logits}, None, None, None, {"label_t": torch.full((1, 2, 2), 255)})["ce"]
    assert none.item() == 0.0
    with pytest.raises(EtcError, match=r"losses\.ce_weights has 3 entries but the model predicts 4"):
        crit({"logits": torch.zeros(1, 4, 2, 2)}, None, None, None, {"label_t": labels})


def test_mf_reference_settings_three_frames_hidden_4_and_its_normalisation():
    """The normalisation is the reference's: MSE(h) + MSE(c), means over B·hidden·M·M; the
    three frames are fed earliest first whatever the signs of k and k_third."""
    torch.manual_seed(10)
    crit = build_criterion({"mf": 1.0}, {"mf_frames": 3, "mf_hidden": 4, "pool_nodes": 3}, 0.4)
    assert crit.needs_third and crit.term_modules["mf"].cell.hidden == 4
    assert not build_criterion({"mf": 1.0}, {"mf_frames": 2}, 0.4).needs_third
    assert not build_criterion({"tl": 1.0, "pi": 1.0}, {"mf_frames": 3}, 0.4).needs_third
    s = [{"feat": torch.randn(2, 4, 6, 6)} for _ in range(3)]  # frames t, n, third
    t = [{"feat": torch.randn(2, 5, 6, 6)} for _ in range(3)]
    batch = {"k": torch.tensor([1, -2]), "k_third": torch.tensor([-1, 2])}
    got = crit(s[0], s[1], t[0], t[1], batch, out_3=s[2], tout_3=t[2])["mf"]
    module = crit.term_modules["mf"]
    order = [[2, 0, 1], [1, 0, 2]]  # per sample: indices of (earliest, middle, latest)
    seq_s = [torch.cat([s[order[i][j]]["feat"][i:i + 1] for i in range(2)]) for j in range(3)]
    seq_t = [torch.cat([t[order[i][j]]["feat"][i:i + 1] for i in range(2)]) for j in range(3)]
    h_s, c_s = module.run([self_affinity(f, 3) for f in seq_s])
    h_t, c_t = module.run([self_affinity(f, 3) for f in seq_t])
    expected = ((h_s - h_t) ** 2).sum() / h_s.numel() + ((c_s - c_t) ** 2).sum() / c_s.numel()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="third-frame outputs"):
        crit(s[0], s[1], t[0], t[1], batch)
