"""The embedded synthetic driving-video dataset: exact labels, exact flow, exact occlusion.

Each clip is a layered 2.5-D scene. Every layer lives on its own canvas (labels, colours,
texture) and moves by an integer displacement per frame — per canvas row for the ground, so
that near rows move faster than far ones (parallax). Cars and pedestrians are layers of their
own with their own velocity on top of the ego-motion of the ground they stand on. Because
every displacement is an integer, the forward/backward flow of every visible pixel is exact,
and nearest-warping a label map with it is exact on non-occluded pixels. Occlusion is exact
too: a pixel is valid when the same layer instance is visible at its target in the other frame.

Photometric nuisances that make a per-frame network flicker: per-frame brightness gain,
per-clip sensor-noise level, deliberately confusable colours (road/sidewalk, sky/building,
grey cars on a grey road) and small classes (poles, signs, pedestrians).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from etc.core.errors import EtcError
from etc.core.io import write_json, write_png
from etc.data.clips import cityscapes_image_path, cityscapes_label_path, synthetic_dense_path
from etc.data.flowpng import write_flow_png

log = logging.getLogger(__name__)

GENERATOR = "etc.synthetic/1"
CLASSES = {7: "road", 8: "sidewalk", 11: "building", 17: "pole", 20: "traffic sign",
           21: "vegetation", 22: "terrain", 23: "sky", 24: "person", 26: "car"}
CITIES = {"train": ("northfield", "southbank"), "val": ("westmoor",)}
SUBTREES = ("leftImg8bit_sequence", "gtFine", "dense")
PAD_Y = 4  # vertical camera shake is bounded by this
FIRST_FRAME = (100, 900)  # a clip's first frame number is drawn from this range
CAR_COLOURS = ((0.40, 0.40, 0.43), (0.15, 0.15, 0.17), (0.60, 0.15, 0.12),
               (0.20, 0.25, 0.55), (0.80, 0.80, 0.80), (0.45, 0.44, 0.44))


def labelled_index(frames: int) -> int:
    """Position of the labelled frame, as Cityscapes' 20th of 30."""
    return frames * 19 // 30


@dataclass
class Layer:
    """A canvas (label ids, 0 = transparent; RGB in [0, 1]) and its motion.

    ``off_x[t]`` holds the horizontal offset of every canvas row at frame t (T×Hc), ``off_y[t]``
    the vertical offset; image pixel (y, x) at frame t shows canvas (y − off_y + pad_y,
    x − off_x[row] + pad_x).
    """

    label: np.ndarray
    rgb: np.ndarray
    off_x: np.ndarray  # T × Hc int
    off_y: np.ndarray  # T int
    pad_x: int
    pad_y: int


@dataclass
class Sprite:
    """A moving object: label/rgb patch and its top-left image position per frame (T×2, x y)."""

    nearness: float
    label: np.ndarray
    rgb: np.ndarray
    pos: np.ndarray


def _noise(rng, h, w, scale, amp):
    """Smooth value noise (upsampled random grid) plus fine grain."""
    import cv2

    gh, gw = max(2, h // scale + 2), max(2, w // scale + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return amp * smooth + 0.3 * amp * rng.standard_normal((h, w)).astype(np.float32)


def _tint(base, jitter, rng):
    return np.clip(np.asarray(base, np.float32) + rng.uniform(-jitter, jitter, 3), 0, 1)


class ClipRenderer:
    """Builds the layers of one clip from its own random generator.

    Speeds are in px/frame for an ego speed of 1; the ground's speed grows linearly from the
    horizon (``s_far``) to the bottom row (``s_near``); things standing on the ground move with
    the ground row at their feet.
    """

    def __init__(self, rng: np.random.Generator, frames: int, h: int, w: int):
        self.rng, self.T, self.h, self.w = rng, frames, h, w
        self.horizon = int(round(h * rng.uniform(0.42, 0.5)))
        self.ego = rng.uniform(0.6, 1.4) * rng.choice([-1, 1]) * max(1.0, w / 192)
        self.s_build = rng.uniform(0.6, 1.2)
        self.s_veg = rng.uniform(1.6, 2.4)
        self.s_far, self.s_near = rng.uniform(1.2, 1.8), rng.uniform(4.0, 5.5)
        # camera shake: cumulative integer vertical offset, bounded
        dy = rng.choice([-1, 0, 0, 0, 1], size=frames)
        dy[0] = 0
        self.shake = np.clip(np.cumsum(dy), -PAD_Y, PAD_Y).astype(np.int64)
        self.max_shift = int(np.ceil(abs(self.ego) * (self.s_near + 0.5) * frames)) + 8

    def ground_speed(self, image_row: float) -> float:
        """Ground speed at an image row (unshaken): s_far at the horizon, s_near at the bottom."""
        depth = np.clip((image_row - self.horizon) / max(1, self.h - self.horizon), 0, 1)
        return float(self.s_far + (self.s_near - self.s_far) * depth)

    # ---- canvases --------------------------------------------------------------------------
    def _canvas(self):
        hc, wc = self.h + 2 * PAD_Y, self.w + 2 * self.max_shift
        return np.zeros((hc, wc), np.uint8), np.zeros((hc, wc, 3), np.float32), hc, wc

    def _layer(self, label, rgb, speed):
        """Canvas + motion; ``speed`` is a scalar or one value per canvas row. Offsets are
        rounded cumulatively, so every per-frame displacement is an integer."""
        hc = label.shape[0]
        speed_rows = np.broadcast_to(np.asarray(speed, np.float64), (hc,))
        t = np.arange(self.T)[:, None]
        off_x = np.round(-self.ego * speed_rows[None, :] * t).astype(np.int64)
        return Layer(label, rgb, off_x, self.shake, self.max_shift, PAD_Y)

    def sky(self):
        lab, rgb, hc, wc = self._canvas()
        rng = self.rng
        lab[:] = 23
        top, bottom = _tint((0.50, 0.58, 0.70), 0.06, rng), _tint((0.62, 0.66, 0.72), 0.05, rng)
        a = np.linspace(0, 1, hc, dtype=np.float32)[:, None, None]
        rgb[:] = top * (1 - a) + bottom * a
        rgb += _noise(rng, hc, wc, 24, 0.03)[..., None]
        return self._layer(lab, rgb, 0.0)

    def buildings(self):
        lab, rgb, hc, wc = self._canvas()
        rng, h = self.rng, self.h
        x = 0
        base_y = self.horizon + PAD_Y + 2
        yy, xx = np.mgrid[0:hc, 0:wc]
        step = max(3, h // 16)
        cell = max(1, step // 2)
        while x < wc:
            bw = int(rng.integers(max(6, self.w // 12), max(12, self.w // 4)))
            top = int(PAD_Y + rng.uniform(0.04, 0.33) * h)
            col = _tint((0.52, 0.56, 0.62), 0.08, rng)  # close to the sky on purpose
            lab[top:base_y, x : x + bw] = 11
            rgb[top:base_y, x : x + bw] = col
            # windows: a grid of darker cells (same class), some unlit
            ny, nx = len(range(top + 2, base_y - 2, step)), len(range(x + 2, x + bw - 2, step))
            lit = rng.random((max(ny, 1), max(nx, 1))) < 0.7
            gy, gx = yy[top:base_y, x : x + bw] - (top + 2), xx[top:base_y, x : x + bw] - (x + 2)
            inside = (gy >= 0) & (gx >= 0) & (gy < ny * step) & (gx < nx * step)
            inside &= (gy % step < cell) & (gx % step < cell) & (yy[top:base_y, x : x + bw] < base_y - 2)
            inside &= xx[top:base_y, x : x + bw] < x + bw - 2
            if inside.any():
                win = np.zeros_like(inside)
                win[inside] = lit[gy[inside] // step, gx[inside] // step]
                rgb[top:base_y, x : x + bw][win] = col * 0.6
            x += bw + int(rng.integers(0, max(2, self.w // 20)))
        rgb += _noise(rng, hc, wc, 8, 0.04)[..., None]
        return self._layer(lab, rgb, self.s_build)

    def vegetation(self):
        lab, rgb, hc, wc = self._canvas()
        rng, h = self.rng, self.h
        yy, xx = np.mgrid[0:hc, 0:wc]
        n = int(wc / max(8, self.w / 6) * rng.uniform(0.5, 1.0))
        for _ in range(n):
            cx = rng.uniform(0, wc)
            cy = self.horizon + PAD_Y - rng.uniform(0.05, 0.18) * h
            r = rng.uniform(0.06, 0.14) * h
            blob = (xx - cx) ** 2 + ((yy - cy) * 1.2) ** 2 < r**2
            lab[blob] = 21
            rgb[blob] = _tint((0.30, 0.45, 0.22), 0.07, rng)
            trunk = (np.abs(xx - cx) < max(1, r / 6)) & (yy > cy) & (yy < self.horizon + PAD_Y + 1)
            lab[trunk] = 21
            rgb[trunk] = (0.30, 0.22, 0.15)
        rgb += _noise(rng, hc, wc, 3, 0.07)[..., None]
        return self._layer(lab, rgb, self.s_veg)

    def ground(self):
        lab, rgb, hc, wc = self._canvas()
        rng, h = self.rng, self.h
        hz = self.horizon + PAD_Y
        rows = np.arange(hc)
        # sidewalk band just below the horizon, wavy boundary along the canvas
        xs = np.arange(wc)
        edge = hz + (0.10 + 0.04 * np.sin(xs / rng.uniform(15, 40) + rng.uniform(0, 6))) * h
        yy = rows[:, None]
        ground = yy >= hz
        sidewalk = ground & (yy < edge[None, :])
        road = ground & ~sidewalk
        lab[road], lab[sidewalk] = 7, 8
        road_col = _tint((0.40, 0.40, 0.42), 0.03, rng)
        side_col = _tint((0.47, 0.45, 0.45), 0.03, rng)  # close to the road on purpose
        rgb[road], rgb[sidewalk] = road_col, side_col
        # terrain patches inside the sidewalk band
        for _ in range(int(rng.integers(1, 4))):
            x0 = int(rng.integers(0, wc - 10))
            x1 = x0 + int(rng.integers(self.w // 10, self.w // 3))
            patch = sidewalk & (xs[None, :] >= x0) & (xs[None, :] < x1)
            lab[patch] = 22
            rgb[patch] = _tint((0.45, 0.50, 0.32), 0.05, rng)
        # dashed lane marking (still road)
        lane_y = int(hz + 0.55 * (hc - hz))
        dash = (xs // max(4, self.w // 16)) % 2 == 0
        thick = max(1, h // 48)
        rgb[lane_y : lane_y + thick, dash] = 0.85
        rgb += _noise(rng, hc, wc, 2, 0.05)[..., None]
        speed = np.array([self.ground_speed(r - PAD_Y) for r in rows])
        return self._layer(lab, rgb, speed)

    def poles(self):
        lab, rgb, hc, wc = self._canvas()
        rng, h = self.rng, self.h
        hz = self.horizon + PAD_Y
        bottom = int(hz + 0.06 * h)  # standing on the sidewalk
        x = int(rng.integers(0, 20))
        while x < wc:
            pw = max(1, h // 48)
            top = int(hz - rng.uniform(0.2, 0.35) * h)
            lab[top:bottom, x : x + pw] = 17
            rgb[top:bottom, x : x + pw] = _tint((0.45, 0.45, 0.47), 0.05, rng)
            if rng.random() < 0.5:
                s = max(3, h // 16)
                x0 = max(0, x - s // 2 + pw // 2)
                lab[top : top + s, x0 : x + s // 2 + pw] = 20
                rgb[top : top + s, x0 : x + s // 2 + pw] = _tint((0.75, 0.72, 0.20), 0.08, rng)
            x += int(rng.integers(self.w // 4, self.w))
        return self._layer(lab, rgb, self.ground_speed(bottom - PAD_Y))

    def objects(self) -> list[Sprite]:
        """Cars on the road and pedestrians on the sidewalk, far ones first (drawn first)."""
        rng, h, w, T = self.rng, self.h, self.w, self.T
        hz = self.horizon
        t = np.arange(T)
        out = []

        def track(x0, vx, y_top):
            x = np.round(x0 + vx * t)
            return np.stack([x, y_top + self.shake], 1).astype(np.int64)

        for _ in range(int(rng.integers(1, 4))):  # cars
            near = rng.uniform(0.25, 0.9)
            sh = int(max(4, (0.10 + 0.12 * near) * h))
            sw = int(sh * rng.uniform(1.8, 2.6))
            lab = np.zeros((sh, sw), np.uint8)
            lab[sh // 3 :, :] = 26
            lab[: sh // 3, sw // 5 : sw - sw // 5] = 26
            rgb = np.zeros((sh, sw, 3), np.float32)
            rgb[lab > 0] = _tint(CAR_COLOURS[int(rng.integers(0, len(CAR_COLOURS)))], 0.04, rng)
            rgb[1 : sh // 3, sw // 5 + 1 : sw - sw // 5 - 1] *= 0.5  # windows
            rgb[sh - max(1, sh // 6) :, : max(1, sw // 4)] *= 0.4  # wheels
            rgb[sh - max(1, sh // 6) :, sw - max(1, sw // 4) :] *= 0.4
            y_bottom = round(hz + (0.12 + near * 0.8) * (h - hz))
            vx = -self.ego * self.ground_speed(y_bottom) + int(rng.integers(-4, 5))
            out.append(Sprite(near, lab, rgb, track(rng.uniform(-0.2 * w, w), vx, y_bottom - sh)))
        for _ in range(int(rng.integers(0, 4))):  # pedestrians
            sh = int(max(5, 0.14 * h))
            sw = max(2, sh // 3)
            yy, xx = np.mgrid[0:sh, 0:sw]
            body = ((xx - (sw - 1) / 2) / (sw / 2)) ** 2 + ((yy - (sh - 1) / 2) / (sh / 2)) ** 2
            lab = np.where(body <= 1.0, 24, 0).astype(np.uint8)
            rgb = np.zeros((sh, sw, 3), np.float32)
            rgb[lab > 0] = _tint((0.55, 0.30, 0.30), 0.15, rng)
            rgb[: max(1, sh // 5)][lab[: max(1, sh // 5)] > 0] = _tint((0.75, 0.6, 0.5), 0.1, rng)
            y_bottom = round(hz + 0.08 * h)
            vx = -self.ego * self.ground_speed(y_bottom) + int(rng.integers(-1, 2))
            out.append(Sprite(0.1, lab, rgb, track(rng.uniform(0, w), vx, y_bottom - sh)))
        out.sort(key=lambda s: s.nearness)
        return out


def _render_layer(layer: Layer, t: int, h: int, w: int):
    """(labels, rgb, disp) of a canvas layer at frame t; ``disp["fw"]``/``disp["bw"]`` are the
    displacements (H×W×2) of the same canvas point to frame t+1 / t−1 (absent at the ends)."""
    ys, xs = np.arange(h), np.arange(w)
    rows = ys - layer.off_y[t] + layer.pad_y  # canvas row of each image row
    cols = xs[None, :] - layer.off_x[t][rows][:, None] + layer.pad_x
    lab = layer.label[rows[:, None], cols]
    rgb = layer.rgb[rows[:, None], cols]
    disp = {}
    for key, s in (("fw", t + 1), ("bw", t - 1)):
        if 0 <= s < layer.off_x.shape[0]:
            d = np.empty((h, w, 2), np.float32)
            d[..., 0] = (layer.off_x[s][rows] - layer.off_x[t][rows])[:, None]
            d[..., 1] = layer.off_y[s] - layer.off_y[t]
            disp[key] = d
    return lab, rgb, disp


def render_clip(rng: np.random.Generator, frames: int, h: int, w: int):
    """Clean images (T×H×W×3 float in [0, 1]), labels (T×H×W ids), layer-instance maps
    (T×H×W, 1 = sky … one id per layer and per object) and per-frame forward/backward
    displacements (T×H×W×2; the last frame's forward and the first frame's backward are 0)."""
    r = ClipRenderer(rng, frames, h, w)
    layers = [r.sky(), r.buildings(), r.vegetation(), r.ground(), r.poles()]
    objects = r.objects()
    T = frames
    labels = np.zeros((T, h, w), np.uint8)
    images = np.zeros((T, h, w, 3), np.float32)
    inst = np.zeros((T, h, w), np.int32)
    fw = np.zeros((T, h, w, 2), np.float32)
    bw = np.zeros((T, h, w, 2), np.float32)
    for t in range(T):
        for i, layer in enumerate(layers, start=1):
            lab, rgb, disp = _render_layer(layer, t, h, w)
            m = lab > 0
            labels[t][m], images[t][m], inst[t][m] = lab[m], rgb[m], i
            if "fw" in disp:
                fw[t][m] = disp["fw"][m]
            if "bw" in disp:
                bw[t][m] = disp["bw"][m]
        for j, obj in enumerate(objects, start=len(layers) + 1):
            x0, y0 = obj.pos[t]
            sh, sw = obj.label.shape
            ya, yb, xa, xb = max(0, y0), min(h, y0 + sh), max(0, x0), min(w, x0 + sw)
            if ya >= yb or xa >= xb:
                continue
            crop = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
            m = obj.label[crop] > 0
            labels[t, ya:yb, xa:xb][m] = obj.label[crop][m]
            images[t, ya:yb, xa:xb][m] = obj.rgb[crop][m]
            inst[t, ya:yb, xa:xb][m] = j
            if t + 1 < T:
                fw[t, ya:yb, xa:xb][m] = obj.pos[t + 1] - obj.pos[t]
            if t > 0:
                bw[t, ya:yb, xa:xb][m] = obj.pos[t - 1] - obj.pos[t]
    return np.clip(images, 0, 1), labels, inst, fw, bw


def target_inside(disp: np.ndarray) -> np.ndarray:
    """H×W bool: p + disp(p) lies inside the image (disp is integer-valued)."""
    h, w = disp.shape[:2]
    ty = np.arange(h)[:, None] + disp[..., 1].astype(np.int64)
    tx = np.arange(w)[None, :] + disp[..., 0].astype(np.int64)
    return (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)


def valid_mask(inst: np.ndarray, t: int, s: int, disp: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose target in frame s is inside the image and shows the same layer."""
    h, w = inst.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w]
    ty = ys + disp[..., 1].astype(np.int64)
    tx = xs + disp[..., 0].astype(np.int64)
    inside = target_inside(disp)
    same = np.zeros((h, w), bool)
    same[inside] = inst[s][ty[inside], tx[inside]] == inst[t][inside]
    return inside & same


def photometric(rng: np.random.Generator, images: np.ndarray):
    """Per-frame brightness flicker and per-clip sensor noise: (uint8 frames, gains, sigma)."""
    T = images.shape[0]
    amp = rng.uniform(0.12, 0.20)
    gain = 1.0 + rng.uniform(-amp, amp, size=T).astype(np.float32)
    sigma = rng.uniform(0.04, 0.16)
    noisy = images * gain[:, None, None, None] + rng.normal(0, sigma, images.shape).astype(np.float32)
    return (np.clip(noisy, 0, 1) * 255 + 0.5).astype(np.uint8), gain, sigma


def _params(train_clips, val_clips, frames, height, width, seed) -> dict:
    return {"generator": GENERATOR, "seed": seed, "frames": frames, "height": height, "width": width,
            "train_clips": train_clips, "val_clips": val_clips, "labelled_index": labelled_index(frames)}


def _remove_stale(out: Path, written: set[Path]) -> int:
    """Delete files of our own subtrees that this run did not write (left by an interrupted
    run with other parameters, or temporary files of an interrupted write)."""
    removed = 0
    for sub in SUBTREES:
        for p in sorted((out / sub).rglob("*")):
            if p.is_file() and p not in written:
                p.unlink()
                removed += 1
    return removed


def make_synthetic(out, *, train_clips: int, val_clips: int, frames: int, height: int, width: int,
                   seed: int) -> str:
    """Write the dataset to ``out`` (Cityscapes layout + dense/); returns a summary paragraph.

    The sizes are the config's ``dataset.synthetic`` section (defaults in the schema).

    A complete folder (``synthetic.json`` present, written last) with the same parameters is
    left as it is; one with other parameters is an error (nothing is overwritten). A folder
    without ``synthetic.json`` is an interrupted run: it is regenerated.
    """
    from tqdm import tqdm

    out = Path(out)
    params = _params(train_clips, val_clips, frames, height, width, seed)
    meta_path = out / "synthetic.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise EtcError(f"{meta_path} is unreadable ({e}); delete {out} or choose another --out") from e
        if {k: meta.get(k) for k in params} == params:
            return _summary(out, meta) + " (already complete; nothing to do)"
        diff = ", ".join(f"{k} {meta.get(k)!r} → {v!r}" for k, v in params.items() if meta.get(k) != v)
        raise EtcError(f"{out} holds a synthetic set made with other parameters ({diff}; see "
                       f"{meta_path}); delete that folder or choose another --out")
    if train_clips < 1 or val_clips < 1 or frames < 2 or height < 32 or width < 32:
        raise EtcError("make-synthetic needs --clips/--val-clips ≥ 1, --frames ≥ 2 and "
                       "--height/--width ≥ 32")
    from etc.core.alloc import check_frame_memory

    check_frame_memory((height, width), frames, "--height/--width [synthetic.height, synthetic.width]")  # a clip at once
    children = np.random.SeedSequence(seed).spawn(train_clips + val_clips)
    ann = labelled_index(frames)
    hist = np.zeros(256, np.int64)
    invalid, occluded, pixels = 0, 0, 0
    photo: dict[str, dict] = {}
    written: set[Path] = set()

    def put(path: Path, array, flow_valid=None):
        if flow_valid is None:
            write_png(path, array)
        else:
            write_flow_png(path, array, flow_valid)
        written.add(path)

    jobs = [("train", i) for i in range(train_clips)] + [("val", i) for i in range(val_clips)]
    for k, (split, i) in enumerate(tqdm(jobs, desc="make-synthetic", unit="clip", disable=None)):
        rng = np.random.default_rng(children[k])
        cities = CITIES[split]
        city, seq = cities[i % len(cities)], i // len(cities)
        start = int(rng.integers(*FIRST_FRAME))
        images, labels, inst, fw, bw = render_clip(rng, frames, height, width)
        frames_u8, gain, sigma = photometric(rng, images)
        photo[f"{split}/{city}_{seq:06d}"] = {
            "first_frame": start, "noise_sigma": round(float(sigma), 4),
            "gain": [round(float(g), 4) for g in gain]}
        for t in range(frames):
            n = start + t
            put(cityscapes_image_path(out, split, city, seq, n), frames_u8[t])
            put(synthetic_dense_path(out, split, city, seq, n, "labelIds"), labels[t])
            if t == ann:
                put(cityscapes_label_path(out, split, city, seq, n), labels[t])
            if t + 1 < frames:
                v = valid_mask(inst, t, t + 1, fw[t])
                put(synthetic_dense_path(out, split, city, seq, n, "flow_fw"), fw[t], v)
                invalid += int((~v).sum())
                occluded += int((~v & target_inside(fw[t])).sum())
                pixels += v.size
            if t > 0:
                v = valid_mask(inst, t, t - 1, bw[t])
                put(synthetic_dense_path(out, split, city, seq, n, "flow_bw"), bw[t], v)
        hist += np.bincount(labels.ravel(), minlength=256)
    removed = _remove_stale(out, written)
    if removed:
        log.warning("removed %d stale files under %s left by an interrupted run", removed, out)
    total = hist.sum()
    meta = dict(params)
    meta.update({
        "cities": {s: list(c) for s, c in CITIES.items()},
        "classes": {str(k): v for k, v in CLASSES.items()},
        "class_pixel_share": {CLASSES[i]: round(float(hist[i] / total), 5) for i in sorted(CLASSES)},
        "occluded_fraction_fw": round(invalid / max(1, pixels), 5),
        "occluded_in_frame_fraction_fw": round(occluded / max(1, pixels), 5),
        "clips": photo,
    })
    write_json(meta_path, meta)  # last: marks the set complete
    return _summary(out, meta)


def _summary(out: Path, meta: dict) -> str:
    shares = ", ".join(f"{k} {100 * v:.1f}%" for k, v in
                       sorted(meta["class_pixel_share"].items(), key=lambda kv: -kv[1]))
    n = meta["train_clips"] + meta["val_clips"]
    occ = f"{100 * meta['occluded_fraction_fw']:.1f}%"
    if "occluded_in_frame_fraction_fw" in meta:
        occ += f" ({100 * meta['occluded_in_frame_fraction_fw']:.1f}% occluded in frame, the rest leaving it)"
    return (f"synthetic set at {out}: {meta['train_clips']} train + {meta['val_clips']} val clips "
            f"({n * meta['frames']} frames of {meta['height']}×{meta['width']}, labelled frame "
            f"{meta['labelled_index']} of {meta['frames']} per clip); class pixel shares: {shares}; "
            f"mean invalid fraction of the forward flow: {occ}.")
