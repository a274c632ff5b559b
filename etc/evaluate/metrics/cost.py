"""Cost of a model: size and GFLOPs from its checkpoint, speed from `etc infer`'s timing JSON.
Each is empty when its source is not given, so the same metric list serves every call. A
keyframe run's GFLOPs (its timing JSON says so) are per frame, amortised over its interval."""

from __future__ import annotations

import json
from pathlib import Path

from etc.core.errors import EtcError
from etc.evaluate.metrics.base import ClipData, Column, Metric


def model_cost(model_ckpt: str | Path, size: tuple[int, int], keyframe: dict | None = None) -> dict:
    """Parameters (millions) and GFLOPs per frame at the evaluated frame size (H, W): one forward,
    or for a keyframe run (``keyframe``: its timing record's ``keyframe_interval`` and
    ``propagate``) the forward and the propagated frames amortised over the interval
    (etc.infer.keyframe.keyframe_gflops; network only, the flow estimator not counted), for a
    fused stream (``temporal_fusion``) the forward and the warp of the last fused scores."""
    from etc.models import count_params, gflops
    from etc.models.checkpoint import load_model_from_checkpoint

    model, state = load_model_from_checkpoint(model_ckpt)
    h, w = (int(v) for v in size)
    out = {"run": state.get("run"), "params_m": count_params(model) / 1e6}
    interval = int((keyframe or {}).get("keyframe_interval") or 1)
    if float((keyframe or {}).get("temporal_fusion") or 0) > 0:
        from etc.infer.keyframe import keyframe_gflops

        # a fused stream: the forward, and the previous fused scores warped into the frame
        parts = keyframe_gflops(model.eval(), h, w, 2, "scores")
        out.update({"gflops": parts["gflops_keyframe"] + parts["gflops_propagated"],
                    "gflops_propagated": parts["gflops_propagated"]})
    elif interval > 1:
        from etc.infer.keyframe import keyframe_gflops

        out.update(keyframe_gflops(model.eval(), h, w, interval, keyframe.get("propagate") or "scores"))
        out["keyframe_interval"] = interval
    else:
        out["gflops"] = gflops(model.eval(), h, w)
    out["gflops_at"] = [h, w]
    return out


# Every row's GFLOPs are per frame; a keyframe row's are amortised over its interval and count the
# network only: its flow estimator (DIS, OpenCV on the CPU) has no FLOP count, its time is in the
# streamed latency.
GFLOPS = Column("gflops", "GFLOPs/frame, network only; flow: CPU time, not counted", section="cost",
                higher_is_better=False)


class ModelCost(Metric):
    """Parameters and GFLOPs per frame at the size of the first evaluated clip (amortised over
    the interval of a keyframe run, as its ``timing`` JSON records it); also the checkpoint's run
    name, which names the row in the results table."""

    columns = (Column("params_m", section="cost", higher_is_better=False), GFLOPS)

    def __init__(self, model_ckpt: str | Path | None, timing: str | Path | None = None):
        self.ckpt = model_ckpt
        self.timing = timing
        self.size: tuple[int, int] | None = None

    def update(self, clip: ClipData) -> None:
        if self.size is None:
            self.size = tuple(clip.pred.shape[1:])

    def merge(self, other: ModelCost) -> None:
        self.size = self.size or other.size

    def result(self) -> dict:
        if self.ckpt is None or self.size is None:
            return {}
        return model_cost(self.ckpt, self.size, read_timing(self.timing) if self.timing is not None else None)


class InferenceTiming(Metric):
    """Frames per second and median ms per frame as `etc infer` measured them, where, and with
    which execution options (they move the speed, and flip TTA the labels too). The speed stays
    in the metrics JSON (a batched run's throughput); the results table's one per-frame speed is
    the streamed latency (etc.report.table.KEYFRAME_COLUMNS), so only where and how appear."""

    columns = (Column("device", section="context", fmt=None),
               Column("inference", section="context", fmt=None))

    def __init__(self, timing: str | Path | None):
        self.timing = timing

    def result(self) -> dict:
        if self.timing is None:
            return {}
        t = read_timing(self.timing)
        return {"fps": t.get("fps"), "ms_per_frame": t.get("median_ms_per_frame"), "device": t.get("device"),
                "inference": inference_options(t)}


def read_timing(path: str | Path) -> dict:
    """A timing JSON: `etc infer`'s, or `etc latency`'s record of every row."""
    try:
        t = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EtcError(f"cannot read timing {path} ({exc}); rerun `etc infer` to rewrite it") from None
    if not isinstance(t, dict):
        raise EtcError(f"timing {path} is not a JSON object; rerun `etc infer` to rewrite it")
    return t


def inference_options(timing: dict) -> str | None:
    """The execution options of a timing record in a few words, e.g. "nhwc fp32 fused-labels
    2-decoders"; None for a record written before they were recorded."""
    if "channels_last" not in timing:
        return None
    words = ["nhwc" if timing["channels_last"] else "nchw", "bf16" if timing.get("bf16") else "fp32"]
    words += [name for name, key in (("flip", "flip"), ("compiled", "compile"), ("fused-labels", "fused_labels"),
                                     ("cudnn-benchmark", "cudnn_benchmark")) if timing.get(key)]
    words.append(f"{int(timing.get('num_workers') or 0)}-decoders")
    return " ".join(words)
