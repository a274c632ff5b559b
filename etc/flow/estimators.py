"""Flow estimators by name — ``dis[:preset]`` (OpenCV DIS, no weights), ``gt`` (the synthetic
set's exact flow) and ``ptlflow:<model>`` (any ptlflow model, weights from a local checkpoint).

Each estimator's ``pair_flows`` turns a batch of frame pairs ``(clip, a, b)`` into ``F_{a→b}``
and ``F_{b→a}`` (N×2×H×W, pixels, vectors in the first frame: the convention of etc.flow.warp)
on its own device, plus occlusion masks (N×H×W bool, True = occluded / leaving the frame) when it knows
them exactly (``gt``); otherwise :func:`occlusion` derives them by the forward–backward check,
on the same device. Adding an estimator = one class and one line in :data:`ESTIMATORS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from etc.core.errors import EtcError
from etc.flow.warp import fb_occlusion

log = logging.getLogger(__name__)

Pair = tuple  # (Clip, a, b): clip positions, as etc.data.clips.training_pairs gives them
PairFlows = tuple  # (fw, bw, occ_fw | None, occ_bw | None); None: derive by the fb check


def occlusion(fw: torch.Tensor, bw: torch.Tensor, occ_fw=None, occ_bw=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The estimator's own occlusion masks, or the forward–backward check where it has none."""
    return (fb_occlusion(fw, bw) if occ_fw is None else occ_fw, fb_occlusion(bw, fw) if occ_bw is None else occ_bw)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ImageEstimator:
    """Base of the estimators that look at the frames: one batched call computes both
    directions (the 2N images go through the model together), then the fb check."""

    uses_images = True
    ckpt_sha256 = ""
    device = torch.device("cpu")

    def flows(self, img_a: Sequence[np.ndarray], img_b: Sequence[np.ndarray]) -> torch.Tensor:
        """F_{a→b} for each pair of H×W×3 uint8 RGB frames: N×2×H×W float32 on ``self.device``."""
        raise NotImplementedError

    def __call__(self, img_a: Sequence[np.ndarray], img_b: Sequence[np.ndarray]) -> torch.Tensor:
        return self.flows(img_a, img_b)

    def pair_flows(self, pairs: Sequence[Pair], image: Callable[[Path], np.ndarray]) -> PairFlows:
        """(fw, bw, None, None): the occlusion comes from the fb check (:func:`occlusion`), which
        the precompute stage runs off the estimator's thread."""
        ia = [image(c.frames[a].image) for c, a, _ in pairs]
        ib = [image(c.frames[b].image) for c, _, b in pairs]
        both = self.flows(ia + ib, ib + ia)
        return both[: len(pairs)], both[len(pairs) :], None, None


class DISEstimator(ImageEstimator):
    """OpenCV's Dense Inverse Search on grey frames: no weights, fast enough to be the CPU
    default; ``dis:fast`` trades accuracy for speed.

    The flows of a batch run on ``threads`` single-threaded DIS instances at once: DIS's own
    parallel loop scales poorly (two threads are far from twice as fast), independent flows
    scale ~linearly, and the CPU saved is what the rest of the stage (decoding, fb check,
    compression) runs on.
    """

    PRESETS = ("ultrafast", "fast", "medium")

    def __init__(self, preset: str = "medium", threads: int | None = None):
        import os

        import cv2

        if preset not in self.PRESETS:
            raise EtcError(f"unknown DIS preset '{preset}'; use dis, dis:{', dis:'.join(self.PRESETS)}")
        self.name = "dis" if preset == "medium" else f"dis:{preset}"
        self.threads = threads or max(1, min(len(os.sched_getaffinity(0)), 8))
        code = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}")
        self.dis = [cv2.DISOpticalFlow_create(code) for _ in range(self.threads)]
        self._pool = None

    def _calc(self, k: int, jobs) -> list:
        import cv2

        out = []
        for a, b in jobs:
            ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
            out.append(self.dis[k].calc(ga, gb, None))
        return out

    def flows(self, img_a, img_b) -> torch.Tensor:
        from concurrent.futures import ThreadPoolExecutor

        import cv2

        jobs = list(zip(img_a, img_b, strict=True))
        n = min(self.threads, len(jobs))
        if n == 1:  # a lone flow: DIS's own parallel loop is all there is
            parts = [self._calc(0, jobs)]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="dis")
            previous = cv2.getNumThreads()  # a process-wide setting: restored right after
            cv2.setNumThreads(1)
            try:
                parts = list(self._pool.map(self._calc, range(n), [jobs[k::n] for k in range(n)]))
            finally:
                cv2.setNumThreads(previous)
        flows = [None] * len(jobs)
        for k, part in enumerate(parts):
            flows[k::n] = part
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).float()


@contextlib.contextmanager
def _quiet():
    """ptlflow prints a banner to stdout on import, its dinov2 modules log an xFormers warning
    each, and ``get_model`` warns about jsonargparse: none of it may pollute CLI output or logs."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def ptlflow_model_names() -> list[str]:
    with _quiet():
        import ptlflow

        return list(ptlflow.get_model_names())


def build_ptlflow_model(model_name: str) -> torch.nn.Module:
    """Random-weight ptlflow architecture (no checkpoint, no download)."""
    with _quiet():
        import ptlflow

        return ptlflow.get_model(model_name)


def load_flow_state_dict(ckpt: str | Path) -> dict:
    """The state dict of a Lightning checkpoint (``{"state_dict": …}``) or a bare state dict."""
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of many kinds: all mean "not a checkpoint"
        from etc.models.checkpoint import load_refusal

        raise EtcError(f"cannot read checkpoint {ckpt} ({load_refusal(exc)}); expected a PyTorch file "
                       f"with a 'state_dict' of tensors or a bare state dict of tensors") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EtcError(f"{ckpt} is not a ptlflow checkpoint (expected a dict with 'state_dict' or a bare "
                       f"state dict of tensors)")
    return state


class PtlflowEstimator(ImageEstimator):
    """A ptlflow model with weights from a local checkpoint (never downloaded at run time).

    ptlflow 0.4.2 builds random weights silently without a checkpoint, and takes a
    ``ckpt_path`` that is not an existing file for the name of published weights to download;
    so we check the file and load its state dict ourselves (strict, ``weights_only``). Frames go
    in as BGR in [0, 1] — the order the published weights were trained in (ptlflow reads with
    ``cv2.imread``) — padded (replicate, bottom/right) to the model's output stride and the
    flow cropped back; ptlflow models pad internally too, the outer pad makes any model safe.
    """

    def __init__(self, model_name: str, ckpt: str | Path | None, device: str | torch.device = "cpu"):
        names = ptlflow_model_names()
        if model_name not in names:
            raise EtcError(f"unknown ptlflow model '{model_name}'; ptlflow lists: {', '.join(names)}")
        if ckpt is None or not Path(ckpt).is_file():
            where = f" ({ckpt} does not exist)" if ckpt else ""
            raise EtcError(
                f"ptlflow:{model_name} needs a local checkpoint{where}: download the weights of "
                f"'{model_name}' (e.g. the 'things' or 'sintel' checkpoint listed in ptlflow's docs / "
                f"GitHub releases) on a machine with internet, put the .ckpt file under weights/ and "
                f"set flow.ckpt (or --ckpt) to its path. Weights are never downloaded at run time."
            )
        model = build_ptlflow_model(model_name)
        state = load_flow_state_dict(ckpt)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).replace("\n", " ")[:240]
            raise EtcError(f"{ckpt} does not fit ptlflow model '{model_name}' ({first}); use the "
                           f"checkpoint made for that architecture") from None
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.stride = int(getattr(model, "output_stride", 8) or 8)
        self.name = f"ptlflow:{model_name}"
        self.ckpt_sha256 = sha256(ckpt)

    def to_input(self, img_a, img_b) -> torch.Tensor:
        """N×2×3×H×W BGR in [0, 1] on the device, padded to the output stride."""
        stack = np.stack([np.stack([a, b]) for a, b in zip(img_a, img_b, strict=True)])  # N×2×H×W×3 RGB
        images = torch.from_numpy(stack).to(self.device).flip(-1).permute(0, 1, 4, 2, 3).float() / 255.0
        n, _, _, h, w = images.shape
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            flat = torch.nn.functional.pad(images.flatten(0, 1), (0, pw, 0, ph), mode="replicate")
            images = flat.view(n, 2, 3, h + ph, w + pw)
        return images

    @torch.inference_mode()
    def flows(self, img_a, img_b) -> torch.Tensor:
        h, w = img_a[0].shape[:2]
        flows = self.model({"images": self.to_input(img_a, img_b)})["flows"][:, 0]
        return flows[..., :h, :w].float()


def gt_flow(root: Path, clip, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact F_{a→b} of the synthetic set, chaining one-step flows: F_{a→b}(p) = F_{a→c}(p) +
    F_{c→b}(p + F_{a→c}(p)), sampled at the nearest pixel (exact: the generator's motion is
    integer); invalid where any step is. Returns (H×W×2 float32, H×W bool valid)."""
    from etc.data.clips import synthetic_dense_path
    from etc.data.flowpng import read_flow_png

    if "city" not in clip.extra:
        raise EtcError("estimator 'gt' needs the synthetic dataset (it reads the generator's exact flow); "
                       "use dis or ptlflow:<model> for real data")
    step = 1 if b > a else -1
    kind = "flow_fw" if step > 0 else "flow_bw"
    total = valid = None
    for pos in range(a, b, step):
        path = synthetic_dense_path(root, clip.split, clip.extra["city"], clip.extra["seq"], clip.frames[pos].number, kind)
        f, v = read_flow_png(path)
        h, w = v.shape
        if total is None:
            total, valid = np.zeros((h, w, 2), np.float32), np.ones((h, w), bool)
        ys, xs = np.mgrid[0:h, 0:w]
        ty, tx = np.round(ys + total[..., 1]).astype(int), np.round(xs + total[..., 0]).astype(int)
        inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
        ty, tx = np.clip(ty, 0, h - 1), np.clip(tx, 0, w - 1)
        total = total + f[ty, tx]
        valid &= inside & v[ty, tx]
    return total, valid


class GTEstimator:
    """The synthetic generator's exact flow and exact occlusion (not an fb check): for
    validating everything downstream of the flow.

    ``noise`` σ > 0 (``gt:noise0.5``) adds a controlled error for the flow study: Gaussian
    noise smoothed over a few pixels (real estimators err by regions, not by pixels) and
    rescaled to a standard deviation of σ pixels per component, seeded by the pair so that
    reruns give the same store. The occlusion masks stay exact, so only the vectors degrade.
    """

    uses_images = False
    ckpt_sha256 = ""
    device = torch.device("cpu")

    def __init__(self, root: str | Path, noise: float = 0.0):
        self.root = Path(root)
        self.noise = float(noise)
        self.name = f"gt:noise{noise:g}" if noise else "gt"

    def _noisy(self, flow: np.ndarray, key: str) -> np.ndarray:
        import zlib

        import cv2

        if not self.noise:
            return flow
        rng = np.random.default_rng(zlib.crc32(f"{key}/{self.noise:g}".encode()))
        field = cv2.GaussianBlur(rng.standard_normal(flow.shape).astype(np.float32), (0, 0), 2.0)
        field /= field.reshape(-1, 2).std(axis=0).clip(min=1e-6)
        return flow + self.noise * field

    def pair_flows(self, pairs: Sequence[Pair], image=None) -> PairFlows:
        out = []
        for clip, a, b in pairs:
            f_ab, v_ab = gt_flow(self.root, clip, a, b)
            f_ba, v_ba = gt_flow(self.root, clip, b, a)
            f_ab, f_ba = self._noisy(f_ab, f"{clip.name}/{a}_{b}"), self._noisy(f_ba, f"{clip.name}/{b}_{a}")
            out.append((torch.from_numpy(f_ab).permute(2, 0, 1), torch.from_numpy(f_ba).permute(2, 0, 1),
                        torch.from_numpy(~v_ab), torch.from_numpy(~v_ba)))
        return tuple(torch.stack(x) for x in zip(*out, strict=True))  # type: ignore[return-value]


ESTIMATORS: dict[str, Callable[..., object]] = {
    "dis": lambda variant, ckpt, device, root: DISEstimator(variant or "medium"),
    "gt": lambda variant, ckpt, device, root: GTEstimator(root, _noise(variant)),
    "ptlflow": lambda variant, ckpt, device, root: PtlflowEstimator(variant, ckpt, device),
}


def _noise(variant: str) -> float:
    """``gt`` → 0, ``gt:noise1.5`` → 1.5 pixels."""
    if not variant:
        return 0.0
    try:
        if variant.startswith("noise") and float(variant[5:]) >= 0:
            return float(variant[5:])
    except ValueError:
        pass
    raise EtcError(f"unknown variant 'gt:{variant}'; use gt or gt:noise<σ in pixels>, e.g. gt:noise1.5")


def make_estimator(spec: str, ckpt: str | Path | None = None, device: str | torch.device = "cpu",
                   root: str | Path | None = None):
    """The estimator registered under ``spec`` = ``family[:variant]`` (``dis``, ``dis:fast``,
    ``gt``, ``ptlflow:raft_small``); ``root`` is the dataset root (needed by ``gt``)."""
    family, _, variant = spec.partition(":")
    if family not in ESTIMATORS or (family == "ptlflow" and not variant):
        raise EtcError(f"unknown flow estimator '{spec}'; use dis, dis:fast, gt, gt:noise<σ> or ptlflow:<model name>")
    if family == "gt" and root is None:
        raise EtcError("estimator 'gt' needs the dataset root")
    if family != "ptlflow" and ckpt is not None:
        log.warning("estimator %s uses no checkpoint; ignoring %s", spec, ckpt)
    return ESTIMATORS[family](variant, ckpt, device, root)
