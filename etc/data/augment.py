"""Paired geometric augmentation: one random affine transform applied to both frames of a
pair, their labels, and the flow between them.

If ``T(p) = A p + b`` maps original pixels to augmented ones, the point ``p`` of frame t that
moves to ``p + F(p)`` in frame s moves to ``T(p + F(p)) = T(p) + A F(p)``; so the new flow is
the old one resampled at ``T⁻¹(p')`` with its vectors multiplied by ``A`` (scaled by the resize
factor, rotated, x negated on a flip). Pixels brought in from outside the image are ignored.

Photometric: an optional Gaussian blur of every frame of a sample (the same decision for all,
as the reference blurs per clip), after the geometric transform; never labels or flow.
The reference's settings (rotation p 0.5, blur p 0.5 with a 5×5 kernel, ImageNet-mean padding)
are the Cityscapes preset's; docs/fidelity.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from etc.data.label_table import IGNORE

PAD_IMAGE = {"zero": (0.0, 0.0, 0.0), "imagenet_mean": (0.485 * 255, 0.456 * 255, 0.406 * 255)}


@dataclass(frozen=True)
class PairedAugment:
    crop: tuple[int, int] | None = None  # (H, W) after scaling; padded with ignore if larger
    scale: tuple[float, float] = (1.0, 1.0)
    rotation: float = 0.0  # max degrees, ±
    hflip: bool = False
    rotation_p: float = 1.0  # probability of rotating at all
    blur_p: float = 0.0  # probability of blurring every frame of the sample
    blur_kernel: int = 5
    pad_image: str = "zero"  # fill of image pixels from outside: a PAD_IMAGE key

    @classmethod
    def from_config(cls, cfg: dict) -> PairedAugment:
        crop = cfg.get("crop")
        return cls(tuple(crop) if crop else None, tuple(cfg.get("scale", (1.0, 1.0))),
                   float(cfg.get("rotation", 0.0)), bool(cfg.get("hflip", False)),
                   float(cfg.get("rotation_p", 1.0)), float(cfg.get("blur_p", 0.0)),
                   int(cfg.get("blur_kernel", 5)), str(cfg.get("pad_image", "zero")))

    def sample_transform(self, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, tuple[int, int]]:
        """A random 2×3 affine matrix (original → augmented pixels) and the output (H, W).

        Draws are made only for what is enabled (a rotation probability of 1 draws nothing), so
        the default settings draw exactly what they drew before these options existed."""
        s = float(rng.uniform(*self.scale)) if self.scale[0] != self.scale[1] else float(self.scale[0])
        rotate = self.rotation > 0 and (self.rotation_p >= 1 or rng.random() < self.rotation_p)
        angle = float(rng.uniform(-self.rotation, self.rotation)) if rotate else 0.0
        flip = bool(self.hflip and rng.random() < 0.5)
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        out_h, out_w = self.crop if self.crop else (sh, sw)
        oy = int(rng.integers(0, sh - out_h + 1)) if sh > out_h else -((out_h - sh) // 2)
        ox = int(rng.integers(0, sw - out_w + 1)) if sw > out_w else -((out_w - sw) // 2)
        return affine_matrix(h, w, s, angle, flip, (oy, ox)), (out_h, out_w)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """``sample`` transformed; with ``flipped`` added (whether the draw flipped it), which
        names the variant where :meth:`variants` is finite."""
        h, w = sample["image_t"].shape[:2]
        matrix, size = self.sample_transform(rng, h, w)
        out = apply_affine(sample, matrix, size, PAD_IMAGE[self.pad_image])
        if self.blur_p > 0 and rng.random() < self.blur_p:
            out = blur_images(out, self.blur_kernel)
        out["flipped"] = bool(matrix[0, 0] < 0)
        return out

    def variants(self) -> tuple[bool, ...] | None:
        """The flip states a frame can come out in when the flip is the only random draw that
        changes pixels (fixed scale, no rotation, crop, or blur): then every augmented frame is
        one of ``len(variants)`` images (etc.train.teacher_cache computes the teacher on each once).
        None otherwise."""
        random_crop = self.crop is not None
        if self.scale[0] != self.scale[1] or (self.rotation > 0 and self.rotation_p > 0) or random_crop \
                or self.blur_p > 0:
            return None
        return (False, True) if self.hflip else (False,)

    def variant(self, image: np.ndarray, flip: bool) -> np.ndarray:
        """``image`` as :meth:`__call__` outputs it in the variant ``flip`` (see :meth:`variants`):
        the same matrix and warp, so the same pixels."""
        h, w = image.shape[:2]
        s = float(self.scale[0])
        matrix = affine_matrix(h, w, s, 0.0, flip, (0, 0))
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return apply_affine({"image_t": image}, matrix, size, PAD_IMAGE[self.pad_image])["image_t"]


def blur_images(sample: dict, kernel: int) -> dict:
    """Every ``image_*`` of ``sample`` through the same ``kernel``×``kernel`` Gaussian, the
    reference's ``cv2.GaussianBlur(img, (k, k), 0)`` (sigma from the size; at 5 cv2's fixed
    binomial [1 4 6 4 1]/16); labels, flow and masks untouched."""
    import cv2

    return {key: cv2.GaussianBlur(value, (kernel, kernel), 0) if key.startswith("image_") else value
            for key, value in sample.items()}


def affine_matrix(h: int, w: int, scale: float, angle_deg: float, flip: bool, offset: tuple[int, int]) -> np.ndarray:
    """Flip about the centre, then rotate + scale about the centre (image → scaled image), then
    crop at ``offset`` (top-left, in the scaled image)."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    flip_m = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    sc = np.diag([scale, scale, 1.0])
    scx, scy = (round(w * scale) - 1) / 2.0, (round(h * scale) - 1) / 2.0
    back = np.array([[1, 0, scx - offset[1]], [0, 1, scy - offset[0]], [0, 0, 1]], dtype=np.float64)
    return (back @ sc @ rot @ flip_m @ to_centre)[:2]


def apply_affine(
    sample: dict, matrix: np.ndarray, size: tuple[int, int], pad_image: tuple[float, ...] = (0.0, 0.0, 0.0)
) -> dict:
    """Transform every array of ``sample`` by ``matrix`` into an output of ``size`` (H, W).

    Known keys: ``image_*`` (H×W×C, bilinear, outside = ``pad_image``, the fill colour in the
    images' 0–255 units), ``label_*`` (nearest, outside = 255), ``flow``
    (H×W×2 in frame t, bilinear + vectors × A), ``valid`` (H×W bool, nearest, outside = False;
    also False where the transformed flow leaves the output frame). Other keys pass through.
    """
    import cv2

    out_h, out_w = size
    dsize = (out_w, out_h)
    out = dict(sample)
    for key, value in sample.items():
        if key.startswith("image_"):
            out[key] = cv2.warpAffine(value, matrix, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=pad_image)
        elif key.startswith("label_"):
            out[key] = cv2.warpAffine(value, matrix, dsize, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE)
    inside = cv2.warpAffine(np.ones(sample["image_t"].shape[:2], np.uint8), matrix, dsize, flags=cv2.INTER_NEAREST, borderValue=0) > 0
    if "flow" in sample:
        flow = cv2.warpAffine(sample["flow"].astype(np.float32), matrix, dsize, flags=cv2.INTER_LINEAR, borderValue=0)
        lin = matrix[:, :2].astype(np.float32)
        flow = flow @ lin.T  # per pixel: A · F
        out["flow"] = flow
        ys, xs = np.mgrid[0:out_h, 0:out_w]
        tx, ty = np.round(xs + flow[..., 0]), np.round(ys + flow[..., 1])
        inside &= (tx >= 0) & (tx <= out_w - 1) & (ty >= 0) & (ty <= out_h - 1)
    valid = sample.get("valid")
    if valid is not None:
        inside &= cv2.warpAffine(valid.astype(np.uint8), matrix, dsize, flags=cv2.INTER_NEAREST, borderValue=0) > 0
    out["valid"] = inside
    return out
