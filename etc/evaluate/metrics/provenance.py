"""Which flow trained a model and which flow measured its TC: two numbers from different flows
are different experiments, so every metrics JSON and the results table say which."""

from __future__ import annotations

from pathlib import Path

from etc.evaluate.metrics.base import Column, Metric


class FlowProvenance(Metric):
    """``flow_eval``: the estimator of the store TC, TC-occ and flicker were measured with;
    ``flow_train``: the config's training estimator, None for a run without the temporal loss
    (as its checkpoint's ablation says, when the checkpoint is given)."""

    columns = (Column("flow_train", "training flow", section="context", fmt=None),
               Column("flow_eval", "TC flow", section="context", fmt=None))

    def __init__(self, config: dict, model_ckpt: str | Path | None = None):
        self.config, self.ckpt = config, model_ckpt

    def result(self) -> dict:
        from etc.flow.roles import evaluation_estimator, training_estimator

        trained_with_flow = True
        if self.ckpt is not None:
            from etc.losses.registry import ablation_needs
            from etc.models.checkpoint import load_checkpoint

            ablation = load_checkpoint(self.ckpt).get("ablation")
            trained_with_flow = not isinstance(ablation, dict) or ablation_needs(ablation, "needs_flow")
        return {"flow_train": training_estimator(self.config) if trained_with_flow else None,
                "flow_eval": evaluation_estimator(self.config)}
