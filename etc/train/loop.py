"""``etc train``: the teacher, or one student under one ablation (a named set of loss terms).

Three parts: :func:`build_run` assembles a :class:`TrainingRun` (data, model, teacher, loss,
optimiser, resumed state), :func:`train_step` is one SGD step on one batch, and :func:`train`
runs the loop with its checkpoints and CSV log.

Every batch is a pure function of (seed, iteration) (see etc.data.pairs.IterationSampler), the
RNG state travels in the checkpoint, and checkpoints are atomic: a killed run restarted with the
same command resumes and, on CPU, ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from etc.core.device import init_distributed, pick_device
from etc.core.errors import EtcError
from etc.core.execution import Execution, resolve_execution
from etc.plan.runs import TEACHER, RunSpec, resolve_run

log = logging.getLogger(__name__)


def param_groups(model: torch.nn.Module, lr: float, head_mult: float) -> list[dict]:
    """Backbone at ``lr``; new layers (head, auxiliary head) at ``head_mult × lr``."""
    backbone, head = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.startswith("backbone.") else head).append(p)
    return [{"params": backbone, "lr": lr}, {"params": head, "lr": lr * head_mult}]


def checkpoint_paths(out: Path) -> tuple[Path, Path]:
    """(final checkpoint, resumable in-progress checkpoint)."""
    out = Path(out)
    return out, out.with_name(out.stem + ".last" + out.suffix)


def run_identity(run: RunSpec, dataset: str, num_classes: int) -> dict:
    """What a checkpoint records about the run and config that made it (the keys it is saved
    under): a checkpoint whose entries differ belongs to another run or config."""
    return {"run": run.name, "spec": run.model, "ablation": run.ablation, "dataset": dataset,
            "num_classes": num_classes}


@dataclass
class TrainingRun:
    """Everything one training run holds from step to step."""

    run: RunSpec
    identity: dict
    device: torch.device
    rank: int
    world: int
    model: torch.nn.Module  # the weights that are saved
    net: torch.nn.Module  # what a step calls: the model, or its DDP wrapper
    teacher: torch.nn.Module | None
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loader: torch.utils.data.DataLoader
    neighbour_grad: bool
    execution: Execution  # layout, autocast and loader workers, resolved for the device
    start: int = 0  # the iteration this process starts at (> 0 when resumed)
    resumed_rng: dict | None = None  # RNG state of the resumed checkpoint, restored by the loop
    per_frame: bool = False  # one student forward per frame (losses.student_forward: per_frame)
    teacher_cache: object | None = None  # etc.train.teacher_cache.TeacherCache: the teacher's outputs by frame key
    meta: dict | None = None  # etc.models.checkpoint.CheckpointMeta.to_state(): classes, palette, input, origin

    def state(self, iteration: int) -> dict:
        """The checkpoint after ``iteration`` steps: weights, optimiser, schedule, RNG."""
        state = {
            **self.identity, "iteration": iteration, **({"meta": self.meta} if self.meta is not None else {}),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng_cpu": torch.get_rng_state(),
        }
        if hasattr(self.criterion, "state_dict"):
            state["criterion"] = self.criterion.state_dict()
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def restore_rng(self) -> None:
        """Continue a resumed run's random stream (dropout) where its checkpoint left it."""
        if self.resumed_rng is None:
            return
        torch.set_rng_state(self.resumed_rng["rng_cpu"])
        if self.device.type == "cuda" and "rng_cuda" in self.resumed_rng:
            torch.cuda.set_rng_state(self.resumed_rng["rng_cuda"], self.device)


def build_run(
    config: dict,
    run: RunSpec,
    last: Path,
    *,
    flow: str | Path | None = None,
    teacher: str | Path | None = None,
    device: str | None = None,
    progress: bool = False,
) -> TrainingRun:
    """Data, model, teacher, loss, optimiser and schedule of ``run``, resumed from ``last`` when
    that in-progress checkpoint exists.

    The global RNG is seeded once and then drawn by the model's and the teacher's construction,
    in this order: the draws that follow (dropout) depend on it.
    """
    from etc.data.augment import PairedAugment
    from etc.data.labels import num_classes as dataset_classes
    from etc.losses import build_criterion
    from etc.losses.ce import check_ce_weights
    from etc.models import build_model, set_feature_tap

    dev = pick_device(device)
    rank, world = init_distributed(dev)
    schedule = run.schedule
    torch.manual_seed(int(schedule["seed"]))

    dataset = config["dataset"]
    n_classes = dataset_classes(dataset["name"])
    pairs = _training_pairs(dataset)
    flow_reader = None
    if run.needs("needs_flow"):
        if flow is None:
            raise EtcError(f"run '{run.name}' uses the temporal loss: pass the training flow store (--flow FILE.h5)")
        from etc.flow.store import FlowStore

        flow_reader = FlowStore(flow).reader()

    execution = resolve_execution(schedule, dev, "train")
    execution.apply(dev)
    model = build_model(run.model, n_classes).to(dev, memory_format=execution.memory_format)
    teacher_model = None
    if run.needs("needs_teacher"):
        if teacher is None:
            raise EtcError(f"run '{run.name}' distils from the teacher: pass its checkpoint (--teacher CKPT)")
        teacher_model = _load_teacher(teacher, dataset["name"], n_classes, dev).to(memory_format=execution.memory_format)
        set_feature_tap(teacher_model, config["losses"]["kd_features"], "teacher")
    set_feature_tap(model, config["losses"]["kd_features"], "student")

    check_ce_weights(config["losses"]["ce_weights"], n_classes)
    criterion = build_criterion(run.ablation, config["losses"], aux_weight=float(run.model["aux_weight"]))
    if hasattr(criterion, "to"):
        criterion = criterion.to(dev)
    optimizer, scheduler = _optimiser(model, criterion, schedule)
    identity = run_identity(run, dataset["name"], n_classes)
    meta = training_meta(config, run, pairs)
    start, resumed = _resume(last, identity, model, optimizer, scheduler, criterion, dev)

    net = model
    if world > 1:
        if dev.type == "cuda":
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    third = bool(getattr(criterion, "needs_third", False))
    augment = PairedAugment.from_config(config["augment"])
    cache_mb = float(schedule["teacher_cache_mb"])
    keyed = teacher_model is not None and cache_mb > 0 and augment.variants() is not None
    loader = _loader(config, run, pairs, flow_reader, start, rank, world, dev, execution.num_workers,
                     third=third, keyed=keyed)
    cache = None
    if keyed and start < int(schedule["iterations"]):
        from etc.train.teacher_cache import SIDES, build_teacher_cache

        sides = SIDES[:1 + run.needs("needs_neighbour") + third]
        cache = build_teacher_cache(teacher_model, loader.dataset, sides, int(schedule["batch_size"]) // world, dev,
                                    channels_last=execution.channels_last, bf16=execution.bf16, cap_mb=cache_mb,
                                    progress=progress)
    return TrainingRun(
        run=run, identity=identity, device=dev, rank=rank, world=world, model=model, net=net,
        teacher=teacher_model, criterion=criterion, optimizer=optimizer, scheduler=scheduler,
        loader=loader, neighbour_grad=bool(config["losses"]["neighbour_grad"]), execution=execution,
        start=start, resumed_rng=resumed,
        per_frame=config["losses"].get("student_forward", "joint") == "per_frame", teacher_cache=cache,
        meta=meta,
    )


def training_meta(config: dict, run: RunSpec, pairs: list) -> dict:
    """What the checkpoints of ``run`` carry so that the network can be used without its
    dataset or config (etc.models.checkpoint.CheckpointMeta): the class names and palette read
    now (a ``folder`` tree's classes.yaml may change or go), the normalisation, the size of the
    frames it trains on (its first training frame's) and the digest of the config values the
    training reads, computed as the workflow's rerun parameter of its job (etc.core.reads)."""
    from etc.core.reads import plain
    from etc.data.decode import image_size
    from etc.models.checkpoint import inference_meta
    from etc.plan.rerun import reads_digest

    clip, t, _ = pairs[0]
    image = clip.frames[t].image
    size = getattr(image, "size", None) or image_size(image)
    student, _, ablation = run.name.partition("/")
    # a plain copy: the digest reads every declared key, which must not count as a read of the run
    digest = (reads_digest(plain(config), "train-teacher") if run.name == TEACHER
              else reads_digest(plain(config), "train-student", student=student, ablation=ablation))
    return inference_meta(config["dataset"]["name"], size, digest).to_state()


OPTIMISERS = {  # schedule.optimizer -> builder; SGD is the reference's (PSPNet), AdamW SegFormer's
    "sgd": lambda params, s: torch.optim.SGD(params, lr=float(s["lr"]), momentum=float(s["momentum"]),
                                            weight_decay=float(s["weight_decay"])),
    "adamw": lambda params, s: torch.optim.AdamW(params, lr=float(s["lr"]), betas=(0.9, 0.999),
                                                weight_decay=float(s["weight_decay"])),
}


def lr_factor(i: int, iterations: int, power: float, warmup: int = 0, warmup_ratio: float = 1e-6) -> float:
    """Poly decay to 0 at the last iteration, times a linear warm-up from ``warmup_ratio`` over
    the first ``warmup`` iterations (mmsegmentation's form, which the SegFormer/CFFM recipes use)."""
    factor = max(0.0, 1.0 - i / iterations) ** power
    if i < warmup:
        factor *= warmup_ratio + (1.0 - warmup_ratio) * i / warmup
    return factor


def _optimiser(model, criterion, schedule: dict):
    """The schedule's optimiser (new layers and trained loss modules at ``lr_head_mult × lr``)
    with poly decay and optional linear warm-up."""
    lr, head_mult = float(schedule["lr"]), float(schedule["lr_head_mult"])
    params = param_groups(model, lr, head_mult)
    extra = [p for p in getattr(criterion, "parameters", lambda: [])() if p.requires_grad]
    if extra:
        params.append({"params": extra, "lr": lr * head_mult})
    optimizer = OPTIMISERS[schedule["optimizer"]](params, schedule)
    iterations, power, warmup = int(schedule["iterations"]), float(schedule["poly_power"]), int(schedule["warmup_iters"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: lr_factor(i, iterations, power, warmup))
    return optimizer, scheduler


def _training_pairs(dataset: dict) -> list:
    from etc.data.clips import list_clips, training_pairs

    clips = list_clips(dataset["name"], dataset["root"], dataset["train_split"], strict=False)
    pairs = training_pairs(clips, dataset["window"], dataset["anchor_stride"])
    if not pairs:
        raise EtcError(f"no training pairs: no labelled frame has a neighbour in window {dataset['window']}")
    return pairs


def _load_teacher(path: str | Path, dataset: str, num_classes: int, dev: torch.device) -> torch.nn.Module:
    """The frozen teacher; refuses a student's checkpoint and one of another class count."""
    from etc.models.checkpoint import load_model_from_checkpoint

    teacher, state = load_model_from_checkpoint(path, map_location=dev)
    if state.get("run") != TEACHER:
        raise EtcError(f"--teacher {path} is the checkpoint of run '{state.get('run')}', not of the teacher; "
                       f"pass the output of `etc train --run teacher`")
    if state["num_classes"] != num_classes:
        raise EtcError(f"--teacher {path} predicts {state['num_classes']} classes ({state.get('dataset')}), the "
                       f"students {num_classes} ({dataset}); train the teacher on the config's dataset")
    return teacher.to(dev).eval().requires_grad_(False)


def _resume(last: Path, identity: dict, model, optimizer, scheduler, criterion, dev) -> tuple[int, dict | None]:
    """Load the in-progress checkpoint into the run's objects; (its iteration, its RNG state).

    The RNG state is returned rather than restored: the loop restores it once the loader's
    iterator exists (see :func:`train`).
    """
    from etc.models.checkpoint import load_checkpoint

    if not last.is_file():
        return 0, None
    state = load_checkpoint(last, map_location=dev)
    differences = _differences(state, identity)
    if differences:
        raise EtcError(f"{last} belongs to another run or config ({differences}); delete it to start afresh")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if "criterion" in state and hasattr(criterion, "load_state_dict"):
        try:
            criterion.load_state_dict(state["criterion"])
        except RuntimeError:  # e.g. MF's ConvLSTM of another losses.mf_hidden
            raise EtcError(f"{last} was made with other loss settings (its loss modules do not fit "
                           f"the config's losses section); delete it to start afresh") from None
    start = int(state["iteration"])
    log.info("resuming %s from iteration %d (%s)", identity["run"], start, last)
    return start, {k: state[k] for k in ("rng_cpu", "rng_cuda") if k in state}


def _differences(state: dict, identity: dict) -> str:
    """'' when ``state`` records ``identity``; otherwise its differing entries, in one line."""
    out = []
    for key, want in identity.items():
        have = state.get(key)
        if have == want:
            continue
        if isinstance(have, dict) and isinstance(want, dict):
            out += [f"{key}.{k} {have.get(k)!r} there, {want.get(k)!r} here"
                    for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
        else:
            out.append(f"{key} {have!r} there, {want!r} here")
    return "; ".join(out)


def _loader(config, run: RunSpec, pairs, flow_reader, start: int, rank: int, world: int, dev,
            workers: int, third: bool = False, keyed: bool = False) -> torch.utils.data.DataLoader:
    """Batches decoded and augmented by ``workers`` processes (0: in this process), each batch a
    pure function of (seed, iteration) whatever the count; pinned for non-blocking copies on
    CUDA. Each worker keeps PREFETCH batches ready."""
    from etc.data.augment import PairedAugment
    from etc.data.pairs import IterationSampler, PairDataset, worker_init

    schedule = run.schedule
    sampler = IterationSampler(len(pairs), int(schedule["batch_size"]), int(schedule["iterations"]),
                               int(schedule["seed"]), start=start, rank=rank, world_size=world)
    dataset = PairDataset(config["dataset"]["name"], pairs, flow_reader, PairedAugment.from_config(config["augment"]),
                          third=third, keyed=keyed)
    # Workers are spawned, not forked: a fork copies whatever locks other threads of this process
    # hold at that moment (decode and writer threads, OpenCV's pool), and a worker that inherits
    # a held lock waits forever (seen in the full test suite). Spawning costs a start-up once.
    extra = {"prefetch_factor": PREFETCH, "persistent_workers": True, "worker_init_fn": worker_init,
             "multiprocessing_context": "spawn"} if workers else {}
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                       pin_memory=dev.type == "cuda", **extra)


PREFETCH = 2


class NonFiniteLoss(ArithmeticError):
    """The loss of a step was inf or NaN; raised before the weights change."""

    def __init__(self, terms: dict[str, torch.Tensor]):
        self.terms = terms
        super().__init__(f"loss {float(terms['total'].detach())}")


def train_step(training: TrainingRun, batch: dict[str, torch.Tensor], phase=None) -> dict[str, torch.Tensor]:
    """One SGD step on ``batch`` (a collated PairDataset batch, on the CPU or already on the
    device): forward of the student and the frozen teacher, the ablation's loss terms,
    backward, optimiser and schedule step.

    ``phase(name)``: a context manager around each part (``device``, ``student``, ``teacher``,
    ``loss``, ``backward``, ``optimizer``), for the step-split benchmark
    (benchmarks/bench_train_step.py); none by default.

    Returns the loss terms (``total`` included); raises :class:`NonFiniteLoss` instead of
    stepping when the total is not finite.
    """
    from etc.data.pairs import device_batch
    from etc.train.teacher_cache import SIDES

    phase = phase or _no_phase
    dev, net, run = training.device, training.net, training.run
    with phase("device"):
        b = device_batch(batch, dev, training.execution.channels_last)
    neighbour = run.needs("needs_neighbour")
    third = neighbour and "image_third" in b
    images = [b["image_t"]] + ([b["image_n"]] if neighbour else []) + ([b["image_third"]] if third else [])
    net.train()
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=training.execution.bf16):
        with phase("student"):
            outs = _student_forward(net, images, training.neighbour_grad, training.per_frame)
        teachers = [None] * len(images)
        with phase("teacher"):
            if training.teacher_cache is not None:
                teachers = [training.teacher_cache(b[f"key_{side}"]) for side in SIDES[:len(images)]]
            elif training.teacher is not None:
                with torch.no_grad():
                    teachers = [training.teacher(x) for x in images]
    out_t, out_n, out_3 = (outs + [None, None])[:3]
    teacher_t, teacher_n, teacher_3 = (teachers + [None, None])[:3]
    extra = {"out_3": out_3, "tout_3": teacher_3} if third else {}
    with phase("loss"):
        terms = training.criterion(out_t, out_n, teacher_t, teacher_n, b, **extra)
        finite = bool(torch.isfinite(terms["total"]))
    if not finite:
        raise NonFiniteLoss(terms)
    with phase("backward"):
        training.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
    with phase("optimizer"):
        training.optimizer.step()
        training.scheduler.step()
    return terms


@contextlib.contextmanager
def _no_phase(_name: str):
    yield


def _student_forward(net, images: list[torch.Tensor], neighbour_grad: bool, per_frame: bool) -> list[dict]:
    """The student's outputs for each frame of a step (labelled frame first).

    Jointly: one forward on the concatenated frames, so BatchNorm normalises them together;
    per frame (``losses.student_forward: per_frame``): one forward each, as the reference code.
    Without ``neighbour_grad`` the other frames are fixed targets: run apart, without gradients.
    """
    if len(images) == 1:
        return [net(images[0])]
    if not neighbour_grad:
        out_t = net(images[0])
        with torch.no_grad():
            return [out_t] + [net(x) for x in images[1:]]
    if per_frame:
        return [net(x) for x in images]
    joint = net(torch.cat(images))
    n = images[0].shape[0]
    return [{k: v[i * n:(i + 1) * n] for k, v in joint.items()} for i in range(len(images))]


def train(
    config: dict,
    run: str,
    out: str | Path,
    *,
    flow: str | Path | None = None,
    teacher: str | Path | None = None,
    log_csv: str | Path | None = None,
    device: str | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> dict:
    """Train ``run`` and write its checkpoint to ``out``; returns a small summary dict.

    ``flow``: the training split's flow store (needed by TL). ``teacher``: the frozen teacher
    checkpoint (needed by the distillation terms). ``stop_after``: stop (with a checkpoint) after
    that many iterations of this call — used by tests to simulate a kill.
    """
    from tqdm import tqdm

    from etc.data.labels import num_classes as dataset_classes
    from etc.models.checkpoint import save_checkpoint

    run_spec = resolve_run(config, run)
    out, last = checkpoint_paths(Path(out))
    iterations = int(run_spec.schedule["iterations"])
    dataset = config["dataset"]["name"]
    if _finished(out, run_identity(run_spec, dataset, dataset_classes(dataset)), iterations):
        log.info("%s is complete; nothing to do", out)
        return {"run": run, "iterations": iterations, "resumed_from": iterations}
    for path in (out, log_csv):  # the in-progress checkpoint goes beside ``out``
        if path is not None:
            _check_writable(Path(path))
    if config["augment"].get("crop"):  # two frames per sample
        from etc.core.alloc import check_frame_memory

        check_frame_memory(config["augment"]["crop"], 2 * int(run_spec.schedule["batch_size"]), "augment.crop")

    training = build_run(config, run_spec, last, flow=flow, teacher=teacher, device=device, progress=progress)
    start, rank = training.start, training.rank
    batch_size = int(run_spec.schedule["batch_size"])
    every = int(run_spec.schedule["checkpoint_every"])
    csv_log = _CsvLog(log_csv, start) if (log_csv and rank == 0) else None
    bar = tqdm(total=iterations, initial=start, desc=f"train {run}", unit="it", disable=not progress or rank != 0 or None)
    it = start
    last_total = math.nan
    tick = time.perf_counter()
    # Creating the iterator draws the workers' base seed from the global RNG. A resumed run
    # makes that draw at the same point of the stream as a fresh one, and only then restores
    # the checkpoint's RNG state, so dropout masks continue exactly where they stopped.
    batches = iter(training.loader)
    training.restore_rng()
    try:
        for batch in _out_of_memory_is_an_error(batches, run, last, every, lambda: it):  # noqa: B023 (the iteration reached, read when it fails)
            lr = training.optimizer.param_groups[0]["lr"]
            try:
                terms = train_step(training, batch)
            except (torch.OutOfMemoryError, MemoryError):
                raise EtcError(_out_of_memory(run, it, last, every)) from None
            except NonFiniteLoss as exc:
                raise EtcError(
                    f"training '{run}' stopped: the loss became {float(exc.terms['total'].detach())} at iteration {it} "
                    f"({', '.join(f'{k}={float(v.detach()):.4g}' for k, v in exc.terms.items())}); the last good "
                    f"checkpoint is kept at {last}. Lower the learning rate or the loss weights."
                ) from None
            it += 1
            now = time.perf_counter()
            samples_per_s = batch_size * 1.0 / max(now - tick, 1e-9)
            tick = now
            last_total = float(terms["total"].detach())
            if csv_log:
                csv_log.write(it, {k: float(v.detach()) for k, v in terms.items()}, lr, samples_per_s)
            bar.update()
            bar.set_postfix(loss=f"{last_total:.4f}")
            if rank == 0 and (it % every == 0 or it == iterations):
                save_checkpoint(last, training.state(it))
            if stop_after is not None and it - start >= stop_after:
                break
    finally:
        bar.close()
        if csv_log:
            csv_log.close()
    if rank == 0 and it == iterations:
        save_checkpoint(out, training.state(it))
        last.unlink(missing_ok=True)
    if training.world > 1:
        torch.distributed.barrier()
    return {"run": run, "iterations": it, "resumed_from": start, "loss": last_total, "processes": training.world,
            "rank": rank}


def _out_of_memory(run: str, it: int, last: Path, every: int) -> str:
    """The one line an out-of-memory error during training becomes (host memory or the GPU's)."""
    kept = (f"the last checkpoint (iteration {it - it % every}) is kept at {last} and a rerun of the same command "
            f"resumes from it" if it >= every and last.exists() else
            f"no checkpoint was written yet (every {every} iterations), so a rerun starts afresh")
    return (f"training '{run}' ran out of memory at iteration {it + 1}; {kept}. Lower train.<teacher|student>."
            f"batch_size or augment.crop, or give the job more memory (Snakemake's mem_mb: raise "
            f"resources.mem_scale, or --set-resources RULE:mem_mb=N)")


def _out_of_memory_is_an_error(batches, run: str, last: Path, every: int, reached):
    """``batches`` with an out-of-memory error while a batch is decoded (the loader's workers, or
    the main process) turned into the same one-line EtcError as one in the step."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (torch.OutOfMemoryError, MemoryError):
            raise EtcError(_out_of_memory(run, reached(), last, every)) from None
        yield batch


def _finished(out: Path, identity: dict, iterations: int) -> bool:
    """Whether ``out`` holds this run's finished model; an error when it holds another model."""
    from etc.models.checkpoint import load_checkpoint

    if out.is_dir():
        raise EtcError(f"--out {out} is a folder; name the checkpoint file, e.g. {out / 'model.pt'}")
    if not out.exists():
        return False
    done = load_checkpoint(out)
    differences = _differences(done, {**identity, "iteration": iterations})
    if not differences:
        return True
    raise EtcError(f"{out} already holds the model of another run or config ({differences}); "
                   f"pass another --out, or delete it to retrain")


def _check_writable(path: Path) -> None:
    """Fail before training, naming ``path``, when it cannot be written (rather than with an
    OSError traceback at the first checkpoint)."""
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=f".{path.name}.", suffix=".probe", dir=path.parent):
            pass
    except OSError as exc:
        if isinstance(exc, IsADirectoryError):
            raise EtcError(f"cannot write {path}: {exc.strerror or exc}; choose a writable path") from None
        from etc.core.io import unwritable

        raise unwritable(path, exc) from None  # a folder refusing writes is named as such


class _CsvLog:
    """Per-iteration CSV; on resume, rows past the checkpoint are dropped so a killed run's log
    continues exactly where its weights do."""

    def __init__(self, path, start: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows, self.fields = [], None
        if start > 0 and self.path.is_file():
            with open(self.path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.fields = reader.fieldnames
                rows = [r for r in reader if int(r["iteration"]) <= start]
        self.fh = open(self.path, "w", newline="")
        self.writer = None
        if self.fields:
            self.writer = csv.DictWriter(self.fh, fieldnames=self.fields)
            self.writer.writeheader()
            self.writer.writerows(rows)

    def write(self, iteration: int, terms: dict, lr: float, samples_per_s: float) -> None:
        row = {"iteration": iteration, **terms, "lr": lr, "samples_per_s": samples_per_s}
        if self.writer is None:
            self.fields = list(row)
            self.writer = csv.DictWriter(self.fh, fieldnames=self.fields)
            self.writer.writeheader()
        self.writer.writerow(row)
        if iteration % 20 == 0:
            self.fh.flush()

    def close(self) -> None:
        self.fh.close()
