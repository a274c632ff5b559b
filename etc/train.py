"""``etc train``: the teacher, or one student under one ablation (a named set of loss terms).

Every batch is a pure function of (seed, iteration) (see etc.data.pairs.IterationSampler), the
RNG state travels in the checkpoint, and checkpoints are atomic: a killed run restarted with the
same command resumes and, on CPU, ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from etc.errors import EtcError

log = logging.getLogger(__name__)

TEACHER = "teacher"


@dataclass(frozen=True)
class RunSpec:
    name: str
    model: dict
    schedule: dict
    ablation: dict

    def needs(self, flag: str) -> bool:
        """needs_teacher / needs_neighbour / needs_flow, from the loss registry."""
        from etc.losses.criterion import ablation_needs

        return ablation_needs(self.ablation, flag)


def run_names(config: dict) -> list[str]:
    """Every training run of a config: the teacher, then each student × ablation."""
    return [TEACHER] + [f"{s}/{a}" for s in config["students"] for a in config["ablations"]]


def resolve_run(config: dict, run: str) -> RunSpec:
    if run == TEACHER:
        return RunSpec(run, config["teacher"], config["train"]["teacher"], {"ce": 1.0})
    student, _, ablation = run.partition("/")
    if student not in config["students"] or ablation not in config["ablations"]:
        raise EtcError(
            f"unknown run '{run}'; runs are 'teacher' or '<student>/<ablation>' with students "
            f"{sorted(config['students'])} and ablations {sorted(config['ablations'])}"
        )
    return RunSpec(run, config["students"][student], config["train"]["student"], config["ablations"][ablation])


# ------------------------------------------------------------------------------------------
# distributed helpers (torchrun sets the environment; a plain run is world size 1)

def dist_info() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _init_distributed(device: torch.device) -> tuple[int, int]:
    rank, world, _ = dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world


def pick_device(name: str | None = None) -> torch.device:
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", dist_info()[2])
    return torch.device("cpu")


def sync(device: torch.device | str) -> None:
    """Wait for queued CUDA work, so that wall-clock timings cover it; no-op elsewhere."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------

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

    from etc.checkpoint import load_checkpoint, load_model_from_checkpoint, save_checkpoint
    from etc.data.augment import PairedAugment
    from etc.data.clips import list_clips, training_pairs
    from etc.data.labels import num_classes as dataset_classes
    from etc.data.pairs import IterationSampler, PairDataset
    from etc.losses import build_criterion
    from etc.models import build_model

    spec = resolve_run(config, run)
    out, last = checkpoint_paths(Path(out))
    sched_cfg = spec.schedule
    iterations = int(sched_cfg["iterations"])
    if out.is_file():
        done = load_checkpoint(out)
        if done.get("iteration") == iterations and done.get("run") == run:
            log.info("%s is complete; nothing to do", out)
            return {"run": run, "iterations": iterations, "resumed_from": iterations}

    dev = pick_device(device)
    rank, world = _init_distributed(dev)
    seed = int(sched_cfg["seed"])
    torch.manual_seed(seed)

    ds_cfg = config["dataset"]
    n_classes = dataset_classes(ds_cfg["name"])
    clips = list_clips(ds_cfg["name"], ds_cfg["root"], ds_cfg["train_split"], strict=False)
    window = ds_cfg["window"]
    pairs = training_pairs(clips, window)
    if not pairs:
        raise EtcError(f"no training pairs: no labelled frame has a neighbour in window {window}")

    flow_reader = None
    if spec.needs("needs_flow"):
        if flow is None:
            raise EtcError(f"run '{run}' uses the temporal loss: pass the training flow store (--flow FILE.h5)")
        from etc.flow.store import FlowStore

        flow_reader = FlowStore(flow).reader()

    model = build_model(spec.model, n_classes).to(dev)
    teacher_model = None
    if spec.needs("needs_teacher"):
        if teacher is None:
            raise EtcError(f"run '{run}' distils from the teacher: pass its checkpoint (--teacher CKPT)")
        teacher_model, _ = load_model_from_checkpoint(teacher, map_location=dev)
        teacher_model.to(dev).eval().requires_grad_(False)

    criterion = build_criterion(spec.ablation, config["losses"], aux_weight=float(spec.model.get("aux_weight", 0.4)))
    if hasattr(criterion, "to"):
        criterion = criterion.to(dev)
    params = param_groups(model, float(sched_cfg["lr"]), float(sched_cfg["lr_head_mult"]))
    extra = [p for p in getattr(criterion, "parameters", lambda: [])() if p.requires_grad]
    if extra:
        params.append({"params": extra, "lr": float(sched_cfg["lr"]) * float(sched_cfg["lr_head_mult"])})
    optimizer = torch.optim.SGD(params, lr=float(sched_cfg["lr"]), momentum=float(sched_cfg["momentum"]),
                                weight_decay=float(sched_cfg["weight_decay"]))
    power = float(sched_cfg["poly_power"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: max(0.0, 1.0 - i / iterations) ** power)

    start = 0
    if last.is_file():
        state = load_checkpoint(last, map_location=dev)
        if state.get("run") != run or state.get("spec") != spec.model:
            raise EtcError(f"{last} belongs to another run or architecture; delete it to start afresh")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "criterion" in state and hasattr(criterion, "load_state_dict"):
            criterion.load_state_dict(state["criterion"])
        torch.set_rng_state(state["rng_cpu"])
        if dev.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], dev)
        start = int(state["iteration"])
        log.info("resuming %s from iteration %d (%s)", run, start, last)

    net = model
    if world > 1:
        if dev.type == "cuda":
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)

    batch = int(sched_cfg["batch_size"])
    sampler = IterationSampler(len(pairs), batch, iterations, seed, start=start, rank=rank, world_size=world)
    dataset = PairDataset(ds_cfg["name"], pairs, flow_reader, PairedAugment.from_config(config["augment"]))
    workers = int(sched_cfg["num_workers"])
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                         pin_memory=dev.type == "cuda", persistent_workers=workers > 0)
    use_amp = dev.type == "cuda"
    neighbour_grad = bool(config["losses"].get("neighbour_grad", True))
    csv_writer = _CsvLog(log_csv, start) if (log_csv and rank == 0) else None

    def state_dict(iteration: int) -> dict:
        state = {
            "run": run, "spec": spec.model, "num_classes": n_classes, "iteration": iteration,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng_cpu": torch.get_rng_state(),
            "ablation": spec.ablation, "dataset": ds_cfg["name"],
        }
        if hasattr(criterion, "state_dict"):
            state["criterion"] = criterion.state_dict()
        if dev.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(dev)
        return state

    every = int(sched_cfg["checkpoint_every"])
    bar = tqdm(total=iterations, initial=start, desc=f"train {run}", unit="it", disable=not progress or rank != 0 or None)
    it = start
    last_total = math.nan
    tick = time.perf_counter()
    for batch_data in loader:
        b = {k: v.to(dev, non_blocking=True) for k, v in batch_data.items()}
        net.train()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            if spec.needs("needs_neighbour") and neighbour_grad:
                both = net(torch.cat([b["image_t"], b["image_n"]]))
                n = b["image_t"].shape[0]
                out_t = {k: v[:n] for k, v in both.items()}
                out_n = {k: v[n:] for k, v in both.items()}
            elif spec.needs("needs_neighbour"):  # the neighbour is a fixed target: no backward
                out_t = net(b["image_t"])
                with torch.no_grad():
                    out_n = net(b["image_n"])
            else:
                out_t, out_n = net(b["image_t"]), None
            tout_t = tout_n = None
            if teacher_model is not None:
                with torch.no_grad():
                    tout_t = teacher_model(b["image_t"])
                    tout_n = teacher_model(b["image_n"]) if spec.needs("needs_neighbour") else None
        terms = criterion(out_t, out_n, tout_t, tout_n, b)
        total = terms["total"]
        if not torch.isfinite(total):
            bar.close()
            raise EtcError(
                f"training '{run}' stopped: the loss became {total.item()} at iteration {it} "
                f"({', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())}); the last good "
                f"checkpoint is kept at {last}. Lower the learning rate or the loss weights."
            )
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        it += 1
        now = time.perf_counter()
        sps = batch * 1.0 / max(now - tick, 1e-9)
        tick = now
        last_total = float(total.detach())
        if csv_writer:
            csv_writer.write(it, {k: float(v.detach()) for k, v in terms.items()}, lr, sps)
        bar.update()
        bar.set_postfix(loss=f"{last_total:.4f}")
        if rank == 0 and (it % every == 0 or it == iterations):
            save_checkpoint(last, state_dict(it))
        if stop_after is not None and it - start >= stop_after:
            break
    bar.close()
    if csv_writer:
        csv_writer.close()
    if rank == 0 and it == iterations:
        save_checkpoint(out, state_dict(it))
        last.unlink(missing_ok=True)
    if world > 1:
        torch.distributed.barrier()
    return {"run": run, "iterations": it, "resumed_from": start, "loss": last_total}


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

    def write(self, iteration: int, terms: dict, lr: float, sps: float) -> None:
        row = {"iteration": iteration, **terms, "lr": lr, "samples_per_s": sps}
        if self.writer is None:
            self.fields = list(row)
            self.writer = csv.DictWriter(self.fh, fieldnames=self.fields)
            self.writer.writeheader()
        self.writer.writerow(row)
        if iteration % 20 == 0:
            self.fh.flush()

    def close(self) -> None:
        self.fh.close()
