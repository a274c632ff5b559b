"""One pass over a frame pair for every consistency metric: the confusion of ``P_t`` against
``warp(P_{t+1}, F_{t→t+1})``, split by the occlusion mask.

TC's per-class intersection is the confusion's diagonal and its union the row plus the column
sum minus the diagonal; the flicker share is the off-diagonal over the total; TC-occ and the
flicker share read the visible half, TC both halves. So the flow is turned into sample
indices once per pair, each label map is gathered once, and one ``bincount`` gives every count
— on any torch device, in integers, so CUDA counts equal the CPU's.

The warp is :func:`etc.flow.warp.warp_labels` (nearest, halves rounding up, out-of-frame
samples left out) to the bit: the same float operations give the same target pixels, and
out-of-frame targets are clamped onto a border of ``IGNORE`` around the next frame instead of
masked (tests/test_metrics.py checks both against each other).
"""

from __future__ import annotations

import torch

from etc.data.label_table import IGNORE


class PairWarp:
    """The nearest backward warp of one pair (``flow`` = F_{t→t+1}, 2×H×W; ``occluded`` H×W
    bool, both on the device the counting runs on), applied to any number of label maps."""

    def __init__(self, flow: torch.Tensor, occluded: torch.Tensor):
        _, h, w = flow.shape
        self.h, self.w, self.occluded = h, w, occluded
        # index arithmetic in float stays exact while the padded frame's indices fit the mantissa
        exact = torch.float32 if (h + 2) * (w + 2) < 2**24 else torch.float64
        xs = torch.arange(w, dtype=torch.float32, device=flow.device).view(1, w)
        ys = torch.arange(h, dtype=torch.float32, device=flow.device).view(h, 1)
        # ⌊p + F(p) + ½⌋ as etc.flow.warp._nearest computes it; NaN leaves the frame as there
        x = (flow[0].float() + xs).add_(0.5).floor_().nan_to_num_(nan=-1.0).clamp_(-1, w)
        y = (flow[1].float() + ys).add_(0.5).floor_().nan_to_num_(nan=-1.0).clamp_(-1, h)
        index = torch.add(x.to(exact), y.to(exact), alpha=w + 2).add_(w + 3)  # (y+1)(w+2) + (x+1)
        self.index = index.view(-1).to(torch.int32 if (h + 2) * (w + 2) < 2**31 else torch.int64)

    def warp(self, following: torch.Tensor) -> torch.Tensor:
        """``following`` (H×W uint8 label map of frame t+1) sampled into frame t, IGNORE where
        the sample leaves the image: :func:`etc.flow.warp.warp_labels` with ``fill=IGNORE``."""
        padded = torch.full((self.h + 2, self.w + 2), IGNORE, dtype=torch.uint8, device=following.device)
        padded[1:-1, 1:-1] = following
        return padded.view(-1).index_select(0, self.index).view(self.h, self.w)

    def confusion(self, current: torch.Tensor, following: torch.Tensor, num_classes: int) -> torch.Tensor:
        """2×(K+1)×K int64 counts ``[visible, occluded][P_t][warp(P_{t+1})]`` over the pixels
        whose warped label is a class (not IGNORE: left the image, or void ground truth); row
        K gathers P_t's own IGNORE pixels (void ground truth), which count as compared and
        changed but in no class, as :meth:`etc.evaluate.metrics.consistency.PooledTC.update_warped`."""
        k = num_classes
        small = torch.uint8 if 2 * (k + 1) <= 256 else torch.int32
        row = current.clamp(max=k).to(small).add_(self.occluded.to(small) * (k + 1))
        col = self.warp(following).clamp_(max=k)  # IGNORE → column K, dropped below
        code = torch.add(col.to(torch.int32), row.to(torch.int32), alpha=k + 1)
        counts = torch.bincount(code.view(-1), minlength=2 * (k + 1) ** 2)
        return counts.view(2, k + 1, k + 1)[:, :, :k]
