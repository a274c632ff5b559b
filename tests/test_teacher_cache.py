"""The teacher's table of outputs (etc.train.teacher_cache): the same training, bit for bit, as the
teacher run in every step; used only where the augmentation's variants are finite."""

import pytest
import torch

from etc.core.config import load_config
from etc.data.augment import PairedAugment
from etc.data.clips import list_clips, training_pairs
from etc.data.pairs import PairDataset, device_batch
from etc.flow.precompute import precompute_flow
from etc.models.checkpoint import load_checkpoint, load_model_from_checkpoint
from etc.plan.runs import resolve_run
from etc.train.loop import build_run, train
from etc.train.teacher_cache import build_teacher_cache

SCHEDULE = {"iterations": 5, "batch_size": 3, "checkpoint_every": 100, "lr": 0.02}


@pytest.fixture(scope="module")
def setup(synthetic_tree, tmp_path_factory):
    d = tmp_path_factory.mktemp("tcache")
    cfg = load_config(None, {
        "dataset": {"root": str(synthetic_tree), "window": [-1, 1, 2]},
        "teacher": {"backbone": "tiny", "width": 0.5, "head_channels": 8},
        "students": {"s": {"backbone": "tiny", "width": 0.25, "head_channels": 8}},
        "train": {"teacher": {**SCHEDULE, "iterations": 3}, "student": SCHEDULE},
        "augment": {"hflip": True},
        "losses": {"mf_frames": 3},
        "ablations": {"tl_kd": {"ce": 1.0, "tl": 1.0, "pi": 1.0, "pf": 1.0, "mf": 1.0}, "pi": {"ce": 1.0, "pi": 1.0}},
        "flow": {"estimator": "gt"},
    })
    flow = d / "train.h5"
    precompute_flow(cfg, "train", flow, estimator="gt", progress=False)
    teacher = d / "teacher.pt"
    train(cfg, "teacher", teacher, progress=False)
    return cfg, d, flow, teacher


@pytest.mark.parametrize("ablation", ["tl_kd", "pi"])
def test_a_student_trains_to_the_same_weights_with_the_table_as_without(setup, ablation):
    cfg, d, flow, teacher = setup
    states = {}
    for mb in (1024, 0):
        c = load_config(None, {**cfg, "train": {**cfg["train"], "student": {**SCHEDULE, "teacher_cache_mb": mb}}})
        out = d / f"{ablation}_{mb}.pt"
        training = build_run(c, resolve_run(c, f"s/{ablation}"), out.with_name("none.last.pt"), flow=flow, teacher=teacher)
        assert (training.teacher_cache is not None) == (mb > 0)
        train(c, f"s/{ablation}", out, flow=flow, teacher=teacher, progress=False)
        states[mb] = load_checkpoint(out)["model"]
    assert states[1024].keys() == states[0].keys()
    for k in states[0]:
        assert torch.equal(states[1024][k], states[0][k]), k


def test_a_looked_up_batch_is_the_teachers_forward_of_that_batch_flipped_or_not(setup):
    """Keys name (frame, flip): a mixed batch's lookups equal the teacher on its images."""
    cfg, _, _, teacher = setup
    tmodel, _ = load_model_from_checkpoint(teacher)
    tmodel.eval()
    clips = list_clips("synthetic", cfg["dataset"]["root"], "train")
    ds = PairDataset("synthetic", training_pairs(clips, [-1, 1, 2]), None, PairedAugment(hflip=True), third=True, keyed=True)
    cache = build_teacher_cache(tmodel, ds, ("t", "n", "third"), 4, torch.device("cpu"), progress=False)
    items = [ds[(i % len(ds), seed)] for i, seed in zip(range(0, 40, 3), range(100, 140), strict=False)][:4]
    flips = {bool(k["key_n"] % 2) for k in items}
    assert flips == {False, True}, "the sample draws both flip states"
    b = device_batch(torch.utils.data.default_collate(items), torch.device("cpu"))
    with torch.no_grad():
        for side, image in (("t", "image_t"), ("n", "image_n"), ("third", "image_third")):
            want = tmodel(b[image])
            got = cache(b[f"key_{side}"])
            assert torch.equal(got["feat"], want["feat"]) and torch.equal(got["logits"], want["logits"]), side


def test_no_table_where_the_augmentation_draws_new_pixels_or_it_exceeds_the_cap(setup):
    cfg, d, flow, teacher = setup
    assert PairedAugment(scale=(0.5, 2.0), hflip=True).variants() is None
    assert PairedAugment(crop=(32, 32)).variants() is None
    assert PairedAugment(hflip=False).variants() == (False,)
    for extra in ({"augment": {"hflip": True, "scale": [0.9, 1.1]}},
                  {"train": {**cfg["train"], "student": {**SCHEDULE, "teacher_cache_mb": 1e-3}}}):
        c = load_config(None, {**cfg, **extra})
        training = build_run(c, resolve_run(c, "s/tl_kd"), d / "x.last.pt", flow=flow, teacher=teacher)
        assert training.teacher_cache is None
