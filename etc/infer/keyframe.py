"""Keyframe inference, strictly causal: the network on every K-th frame, its result carried to
the frames between by optical flow computed at inference time — the family of methods the ETC
paper compares its per-frame students against (DFF, Accel, DVSN, LVS). Two members are built
here, and named for what they are: score propagation, and feature propagation DFF-style
without DFF's end-to-end flow fine-tuning or its scale field (docs/fidelity.md).

``etc infer --keyframe-interval K`` runs it through the one inference loop of etc.infer.predict, one
frame at a time (a stream); this module holds what a keyframe method adds to that loop:

- the schedule: frame 0 of a clip is a keyframe, then every K-th frame after the anchor;
  ``offset`` d anchors each clip so that its first labelled frame lies d frames after its last
  keyframe (the sparse-label protocol scores the labelled frame at every d = 0 … K−1);
- ``scores`` (score propagation): the keyframe's class scores (full resolution) warped backward into
  frame t with F_{t→k}, labels from the warped scores;
- ``features`` (feature propagation, DFF-style, no flow fine-tuning): the keyframe's last
  backbone features warped with F_{t→k} resized to their stride — before the pyramid pooling —
  and the head (PSPNet: pyramid pooling, 3×3 conv, classifier) run on every frame. The flow is
  a fixed estimator's, never trained with the network, and there is no scale field. Needs a
  model with ``backbone_features`` / ``head_logits``.

The flow is **direct** from the current frame to its keyframe (one estimate per frame, as DFF
does), not composed from frame-to-frame flows: composing costs the same single estimate per
frame plus a resampling, accumulates each step's interpolation error, and loses a pixel as soon
as any intermediate step leaves the frame, while direct flow errs only by the one estimate;
the displacement it must find grows with the offset (at most K−1 frames of motion), which DIS's
coarse-to-fine pyramid handles at the default set's motion. Samples leaving the frame take the
border value (``padding="border"``, as FlowNet's Resample2d). Frame t reads frames t and k ≤ t
only: causal by construction (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from etc.core.errors import EtcError
from etc.flow.warp import resize_flow, warp_backward
from etc.infer.upsample_argmax import upsample_argmax

PROPAGATIONS = ("scores", "features")
DEFAULT_ESTIMATOR = "dis"


@dataclass(frozen=True)
class KeyframeOptions:
    """What ``etc infer --keyframe-interval/--propagate/--flow-estimator/--keyframe-offset`` ask."""

    interval: int = 1
    propagate: str = "scores"
    estimator: str = DEFAULT_ESTIMATOR
    ckpt: str | None = None
    offset: int | None = None  # labelled frame's distance from its last keyframe; None: anchor at 0

    def __post_init__(self):
        if int(self.interval) < 1:
            raise EtcError(f"--keyframe-interval {self.interval}: must be ≥ 1 (1 = every frame a keyframe)")
        if self.propagate not in PROPAGATIONS:
            raise EtcError(f"--propagate {self.propagate}: use one of {', '.join(PROPAGATIONS)}")
        if self.offset is not None and not 0 <= int(self.offset) < int(self.interval):
            raise EtcError(f"--keyframe-offset {self.offset}: must lie in 0 … {int(self.interval) - 1} "
                           f"(the keyframe interval minus one)")

    @property
    def active(self) -> bool:
        return int(self.interval) > 1

    def describe(self) -> dict:
        """The timing record's keyframe fields."""
        if not self.active:
            return {"keyframe_interval": 1}
        return {"keyframe_interval": int(self.interval), "propagate": self.propagate,
                "keyframe_estimator": self.estimator, "keyframe_offset": self.offset}


def anchor(clip, options: KeyframeOptions) -> int:
    """The frame position the keyframe schedule of ``clip`` counts from (:func:`placement`)."""
    return placement(clip, options)[0]


def anchors(clips, options: KeyframeOptions) -> list[int]:
    """Each clip's schedule anchor, after refusing a set where ``options.offset`` cannot be
    reached in some clip (:func:`check_reachable`): one refusal naming the shortest clip."""
    if options.offset is not None:
        check_reachable(clips, int(options.interval), dense=False)
    return [anchor(c, options) for c in clips]


def reachable_offsets(clip, dense: bool) -> int:
    """How many offsets d = 0, 1, … from the last keyframe a clip can score: frame 0 is always a
    keyframe, so a clip of T frames reaches d ≤ T − 1 on its frames (``dense``: every frame
    scored), and a clip whose first labelled frame is f reaches d ≤ f with it."""
    if dense:
        return len(clip)
    if not clip.labelled:
        raise EtcError(f"--keyframe-offset needs a labelled frame in every clip; clip {clip.name} has none")
    return min(clip.labelled) + 1


def check_reachable(clips, interval: int, dense: bool) -> None:
    """Refuse an interval K with an offset d = 0 … K−1 that some clip cannot reach: averaging
    only the offsets (or clips) that can would report a partial protocol as the whole one."""
    if int(interval) <= 1 or not clips:
        return
    shortest = min(clips, key=lambda c: reachable_offsets(c, dense))
    n = reachable_offsets(shortest, dense)
    if n < int(interval):
        where = (f"has {len(shortest)} frames" if dense
                 else f"has its labelled frame at position {min(shortest.labelled)}")
        raise EtcError(f"keyframe interval {interval}: clip {shortest.name} {where}, so offsets {n} … "
                       f"{int(interval) - 1} from a keyframe cannot be reached (frame 0 is always one); use a "
                       f"keyframe.intervals entry of at most {n}")


def placement(clip, options: KeyframeOptions) -> tuple[int, bool]:
    """(schedule anchor, True): the clip's schedule anchored so that its first labelled frame
    lies ``options.offset`` frames after its last keyframe. Frame 0 is always a keyframe, so a
    labelled frame fewer than d frames from the clip's start cannot lie d frames after one:
    refused (:func:`check_reachable`), never scored as a partial protocol."""
    if options.offset is None:
        return 0, True
    check_reachable([clip], int(options.interval), dense=False)
    return (min(clip.labelled) - options.offset) % int(options.interval), True


def last_keyframe(t: int, interval: int, start: int = 0) -> int:
    """The keyframe frame t is predicted from: frame 0 before ``start``, else the latest
    ``start + j·interval`` ≤ t."""
    if t < start:
        return 0
    return start + (t - start) // interval * interval


def schedule(length: int, interval: int, start: int = 0) -> list[int]:
    """Each frame's keyframe position (``schedule[t] == t`` on keyframes)."""
    return [last_keyframe(t, interval, start) for t in range(length)]


def has_feature_split(model: torch.nn.Module) -> bool:
    return callable(getattr(model, "backbone_features", None)) and callable(getattr(model, "head_logits", None))


def check_model(model: torch.nn.Module, options: KeyframeOptions, arch: str) -> None:
    if options.active and options.propagate == "features" and not has_feature_split(model):
        raise EtcError(f"--propagate features: architecture '{arch}' has no backbone/head split to warp "
                       f"features between (only pspnet has one); use --propagate scores")


class FlowToKeyframe:
    """F_{t→k} (1×2×H×W on ``device``) by a named estimator (etc.flow.estimators), from the
    frames' uint8 RGB images or, for ``gt``, from the synthetic set's exact flow."""

    def __init__(self, spec: str, ckpt: str | None, device: torch.device, root: str | Path):
        from etc.flow.estimators import make_estimator

        if spec.startswith("ptlflow:") and not ckpt:
            raise EtcError(f"--keyframe-flow {spec} needs a local checkpoint: give --keyframe-flow-ckpt "
                           f"(keyframe.ckpt); weights are never downloaded at run time")
        self.spec = spec
        self.device = device
        self.estimator = make_estimator(spec, ckpt, device if spec.startswith("ptlflow:") else "cpu", root)

    def __call__(self, clip, t: int, k: int, image_t: np.ndarray, image_k: np.ndarray) -> torch.Tensor:
        if getattr(self.estimator, "uses_images", True):
            flow = self.estimator.flows([image_t], [image_k])
        else:
            from etc.flow.estimators import gt_flow

            f, _ = gt_flow(self.estimator.root, clip, t, k)
            flow = torch.from_numpy(f).permute(2, 0, 1)[None]
            if self.estimator.noise:
                flow = torch.from_numpy(self.estimator._noisy(f, f"{clip.name}/{t}_{k}")).permute(2, 0, 1)[None]
        return flow.to(self.device, torch.float32)


def keyframe_predictor(model: torch.nn.Module, options: KeyframeOptions, state: dict, ex, dev: torch.device,
                       root: str | Path) -> KeyframePredictor:
    """The stream of ``model`` (from a checkpoint whose saved dict is ``state``) under
    ``options``, with the execution ``ex`` (etc.core.execution) and the flow estimator it names:
    what `etc infer --keyframe-interval` and `etc latency` run."""
    check_model(model, options, (state.get("spec") or {}).get("arch", "pspnet"))
    return KeyframePredictor(model, options, FlowToKeyframe(options.estimator, options.ckpt, dev, root),
                             ex.bf16, ex.fused_labels)


class KeyframePredictor:
    """One frame in, its labels out (1×H×W), keeping the last keyframe's scores or features.

    Keyframes go through the whole network and get exactly the labels ``etc infer`` gives
    them per frame (same scores, same label rule); other frames are propagated."""

    def __init__(self, model: torch.nn.Module, options: KeyframeOptions, flow: FlowToKeyframe,
                 bf16: bool = False, fused: bool = False):
        self.model, self.options, self.flow = model, options, flow
        self.bf16, self.fused = bf16, fused
        self.state: torch.Tensor | None = None  # keyframe scores (B×K×H×W) or features
        self.key_image: np.ndarray | None = None
        self.key_clip, self.key_pos = None, -1
        self.keyframes = 0

    def _labels(self, low: torch.Tensor, up: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
        """Labels of the ``size`` frame from stride-s scores upsampled to ``up`` (a zoo model's
        padded frame), by the rule ``etc infer`` uses per frame."""
        h, w = size
        if self.fused:
            return upsample_argmax(low, tuple(up))[:, :h, :w]
        return self._upsample(low, up, size).permute(0, 2, 3, 1).argmax(-1)

    @staticmethod
    def _upsample(low: torch.Tensor, up: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
        full = F.interpolate(low, tuple(up), mode="bilinear", align_corners=False)
        return full[..., : size[0], : size[1]].float()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, raw: np.ndarray, clip, t: int, start: int) -> torch.Tensor:
        """``images`` 1×3×H×W normalised, ``raw`` its H×W×3 uint8 RGB frame, ``t`` its position
        in ``clip``, ``start`` the clip's schedule anchor (:func:`anchor`)."""
        k = last_keyframe(t, int(self.options.interval), start)
        size = tuple(images.shape[-2:])
        features = self.options.propagate == "features"
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if k == t:
                self.key_clip, self.key_pos, self.key_image = clip.name, t, raw
                self.keyframes += 1
                if features:
                    self.state = self.model.backbone_features(images)
                    return self._labels(self.model.head_logits(self.state), size, size)
                out = self.model(images, full_logits=False)
                self.state = self._upsample(out["logits_low"], out["logits_size"], size)
                return self._labels(out["logits_low"], out["logits_size"], size)
            if self.key_clip != clip.name or self.key_pos != k:
                raise RuntimeError(f"frame {t} of {clip.name} needs keyframe {k}, which was not the last one seen")
            flow = self.flow(clip, t, k, raw, self.key_image)  # F_{t→k}: from t into the keyframe
            if features:
                warped = warp_backward(self.state.float(), resize_flow(flow, tuple(self.state.shape[-2:])),
                                       padding="border")
                return self._labels(self.model.head_logits(warped.to(self.state.dtype)), size, size)
            warped = warp_backward(self.state, flow, padding="border")
        return warped.permute(0, 2, 3, 1).argmax(-1)


def _grid_sample_flops(x_shape, grid_shape, *args, out_shape=None, **kwargs) -> int:
    """Bilinear backward warping: 4 taps, one multiply-accumulate each, per output value and
    channel (2 FLOPs per MAC, FlopCounterMode's convention); the sampling weights are not counted,
    as normalisation and activations are not."""
    return 2 * 4 * x_shape[0] * x_shape[1] * grid_shape[1] * grid_shape[2]


def keyframe_gflops(model: torch.nn.Module, height: int, width: int, interval: int, propagate: str) -> dict:
    """GFLOPs per frame of a keyframe stream of H×W frames, amortised over its K frames:
    ``(keyframe forward + (K−1) × propagated frame) / K``, a propagated frame being the warp of
    the keyframe's scores (``scores``) or the warp of its backbone features plus the head
    (``features``). Each part is counted by ``torch.utils.flop_counter.FlopCounterMode`` on the
    model's own modules (on the meta device, as etc.models.info.gflops counts the forward), the
    warp by :func:`_grid_sample_flops`. The flow estimator (DIS, OpenCV on the CPU) has no FLOP
    count: it is not in these figures, and its time is in the frame's latency."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    from etc.models.info import gflops

    K = int(interval)
    full = gflops(model, height, width)
    propagated = 0.0
    if K > 1:
        meta = copy.deepcopy(model).to("meta").eval()
        counted = {torch.ops.aten.grid_sampler_2d: _grid_sample_flops}
        x = torch.empty(1, 3, height, width, device="meta")
        with torch.no_grad():
            if propagate == "features":
                state = meta.backbone_features(x)
            else:
                state = torch.empty(1, int(meta(x, full_logits=False)["logits_low"].shape[1]), height, width,
                                    device="meta")
            flow = torch.empty(1, 2, *state.shape[-2:], device="meta")
            with FlopCounterMode(display=False, custom_mapping=counted) as counter:
                warped = warp_backward(state, flow, padding="border")
                if propagate == "features":
                    meta.head_logits(warped)
        propagated = counter.get_total_flops() / 1e9
    return {"gflops": (full + (K - 1) * propagated) / K, "gflops_keyframe": full, "gflops_propagated": propagated}
