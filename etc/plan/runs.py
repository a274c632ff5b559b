"""The training runs a config defines: the teacher, and every student under every ablation."""

from __future__ import annotations

from dataclasses import dataclass

from etc.core.errors import EtcError
from etc.losses.registry import ablation_needs

TEACHER = "teacher"


@dataclass(frozen=True)
class RunSpec:
    """One run: its name, the model entry it trains, its schedule and its loss recipe."""

    name: str
    model: dict
    schedule: dict
    ablation: dict

    def needs(self, flag: str) -> bool:
        """needs_teacher / needs_neighbour / needs_flow, as the loss registry records them."""
        return ablation_needs(self.ablation, flag)


def student_run_names(config: dict) -> list[str]:
    """Each student × ablation of a config, as '<student>/<ablation>'."""
    return [f"{s}/{a}" for s in config["students"] for a in config["ablations"]]


def run_names(config: dict) -> list[str]:
    """Every training run of a config: the teacher, then each student × ablation."""
    return [TEACHER, *student_run_names(config)]


def resolve_run(config: dict, run: str) -> RunSpec:
    """The RunSpec of ``run`` ('teacher' or '<student>/<ablation>')."""
    if run == TEACHER:
        return RunSpec(run, config["teacher"], config["train"]["teacher"], {"ce": 1.0})
    student, _, ablation = run.partition("/")
    if student not in config["students"] or ablation not in config["ablations"]:
        raise EtcError(
            f"unknown run '{run}'; runs are 'teacher' or '<student>/<ablation>' with students "
            f"{sorted(config['students'])} and ablations {sorted(config['ablations'])}"
        )
    return RunSpec(run, config["students"][student], config["train"]["student"], config["ablations"][ablation])
