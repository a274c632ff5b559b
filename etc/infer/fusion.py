"""Training-free temporal fusion at inference: a per-frame network's softmax blended, where the
flow is trusted, with the previous frame's fused scores warped into the current frame.

    s_t = (1 − A·M_t)·p_t + A·M_t·warp(s_{t−1}, F_{t→t−1})

``p_t`` the frame's own softmax (full resolution), ``A`` the fusion strength in [0, 1], ``M_t``
1 where the forward–backward check (etc.flow.warp.fb_occlusion, F_{t→t−1} against F_{t−1→t})
finds the pixel visible in both frames and inside the frame, else 0; labels are the argmax of
``s_t``. Strictly causal: frame t reads frames t and t−1 and the state fused from the frames
before. Frame 0 of a clip is its own softmax. The flow is estimated at inference time by the
keyframe code's estimator (etc.infer.keyframe.FlowToKeyframe, two estimates per frame for the
check), inside each frame's timed span. It is the baseline a consistency-trained student must
beat: temporal smoothing bought at inference, without training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from etc.core.errors import EtcError
from etc.flow.warp import fb_occlusion, warp_backward


def check_strength(strength: float) -> float:
    a = float(strength)
    if not 0.0 <= a <= 1.0:
        raise EtcError(f"--temporal-fusion {strength}: must lie in 0 … 1 (0: plain per-frame inference)")
    return a


@dataclass(frozen=True)
class FusionOptions:
    """A fused stream's settings, as ``etc infer --temporal-fusion A --keyframe-flow E`` asks."""

    strength: float
    estimator: str
    ckpt: str | None = None

    def __post_init__(self):
        check_strength(self.strength)

    def describe(self) -> dict:
        """The timing record's fusion fields."""
        return {"temporal_fusion": float(self.strength), "temporal_fusion_estimator": self.estimator}


class TemporalFusion:
    """One frame in, its labels out (1×H×W), keeping the last fused scores of the clip."""

    def __init__(self, model: torch.nn.Module, strength: float, flow, bf16: bool = False):
        self.model, self.strength, self.flow, self.bf16 = model, check_strength(strength), flow, bf16
        self.state: torch.Tensor | None = None
        self.prev_image: np.ndarray | None = None
        self.clip, self.pos = None, -1

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, raw: np.ndarray, clip, t: int) -> torch.Tensor:
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            p = self.model(images)["logits"].float().softmax(1)  # the frame's own softmax
        if t == 0 or self.clip != clip.name or self.pos != t - 1:
            fused = p
        else:
            back = self.flow(clip, t, t - 1, raw, self.prev_image)  # F_{t→t−1}: from t into t−1
            fwd = self.flow(clip, t - 1, t, self.prev_image, raw)  # F_{t−1→t}, for the check
            trust = (~fb_occlusion(back, fwd)).to(p.dtype)[:, None] * self.strength
            fused = (1.0 - trust) * p + trust * warp_backward(self.state, back, padding="border")
        self.state, self.prev_image, self.clip, self.pos = fused, raw, clip.name, t
        return fused.argmax(1)


def fusion_predictor(model: torch.nn.Module, options: FusionOptions, ex, dev: torch.device, root) -> TemporalFusion:
    """The fused stream of ``model`` under ``options``, with the execution ``ex``
    (etc.core.execution) and the flow estimator it names: what `etc infer --temporal-fusion` and
    `etc latency` run."""
    from etc.infer.keyframe import FlowToKeyframe

    return TemporalFusion(model, options.strength, FlowToKeyframe(options.estimator, options.ckpt, dev, root), ex.bf16)
