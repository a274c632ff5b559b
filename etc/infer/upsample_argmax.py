"""Labels from low-resolution logits without materialising full-resolution scores.

A segmentation network predicts K class scores on a grid s times coarser than the frame and
upsamples them bilinearly before the argmax. On a CPU that upsampling and the argmax over
the full-resolution B×H×W×K scores cost a large share of the network's own time
(docs/performance.md), yet almost every output pixel's label is known from the coarse grid:

    a bilinear value is a convex combination of its four coarse neighbours, so where all four
    have the same argmax c, c is the argmax of every pixel between them
    (Σᵢ wᵢ·vᵢ[c] ≥ Σᵢ wᵢ·vᵢ[d] for every d, because each vᵢ[c] ≥ vᵢ[d] and wᵢ ≥ 0).

So only the cells whose four corners disagree are interpolated and reduced, as dense s×s
blocks (small matrix products), over just the classes that can win in each (usually two or
three), and the others are filled with their corner's label. The labels are those of
``F.interpolate(..., mode="bilinear", align_corners=False)`` followed by the argmax, up to the
rounding of the interpolation at exact near-ties (a different but equally rounded sum: a
handful of pixels, each with a top-two margin at the last bits of float32; docs/performance.md
counts them). Scale factors that are not even integers fall back to that reference
computation, and so do scores so busy that the blocks would cost more (MAX_BLOCK_WORK).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Above this share of the full computation's cell × class scores (all cells mixed, every class
# a candidate) the blocks cost about as much as upsampling everything (timed on a CPU at
# several shares; a trained student's scores need a small fraction of this).
MAX_BLOCK_WORK = 0.5
# Cells are blended in groups by how many classes they cannot rule out (at most 2, 3, 4, then
# the rest at the most any cell needs): most boundary cells hold two or three candidates.
CANDIDATE_GROUPS = (2, 3, 4)


def upsample_argmax(low: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B×K×h×w scores → B×H×W labels (uint8 when K ≤ 256, else int64) of their bilinear
    (align_corners=False) upsampling to ``size``."""
    B, K, h, w = low.shape
    H, W = int(size[0]), int(size[1])
    sy, sx = H // h, W // w
    dtype = torch.uint8 if K <= 256 else torch.int64
    if (H, W) == (h, w):
        return low.argmax(1).to(dtype)
    if H != sy * h or W != sx * w or sy % 2 or sx % 2:
        return reference_labels(low, (H, W)).to(dtype)
    low = low.float()
    # pad by one coarse cell on every side (replicate: what the interpolation does at the
    # border, where it clamps the source index); cell (i, j) of the padded grid spans the
    # output block [i·sy − sy/2, (i+1)·sy − sy/2) between coarse centres i−1 and i
    top = _pad_replicate(low.argmax(1))  # B×(h+2)×(w+2)
    corner = top[:, :-1, :-1]
    uniform = (corner == top[:, 1:, :-1]) & (corner == top[:, :-1, 1:]) & (corner == top[:, 1:, 1:])
    # block-major labels (cell, pixel of its block): each mixed block is one contiguous row
    blocks = corner.reshape(-1, 1).to(dtype).expand(-1, sy * sx).contiguous()
    b, i, j = (~uniform).nonzero(as_tuple=True)
    if b.numel() and not _blend_mixed(blocks, low, b, i, j, sy, sx, MAX_BLOCK_WORK * uniform.numel() * K):
        return reference_labels(low, (H, W)).to(dtype)
    out = blocks.view(B, h + 1, w + 1, sy, sx).permute(0, 1, 3, 2, 4).reshape(B, (h + 1) * sy, (w + 1) * sx)
    return out[:, sy // 2: sy // 2 + H, sx // 2: sx // 2 + W]


def reference_labels(low: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The argmax of the full-resolution bilinear scores (over a B×H×W×K view, which is
    contiguous, and fast to reduce, for channels_last scores)."""
    up = F.interpolate(low.float(), size, mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1).argmax(-1)


def _blend_mixed(blocks: torch.Tensor, low: torch.Tensor, b, i, j, sy: int, sx: int, budget: float) -> bool:
    """Write into ``blocks`` (one row of sy·sx labels per padded cell) the labels of the mixed
    cells (b, i, j): the bilinear blend of their four corners' score vectors at each output
    pixel, reduced over the classes that can win there. False, writing nothing, when that
    would blend more than ``budget`` cell × class scores: the full computation is faster.

    Inside a cell a class's score lies between its smallest and largest corner value, so a
    class whose largest corner value is below some class's smallest one never wins in that
    cell. A cell with t candidates blends only the t classes of largest upper bound."""
    K, h2, w2 = low.shape[1], low.shape[2] + 1, low.shape[3] + 1
    padded = _pad_replicate(low.permute(0, 2, 3, 1)).reshape(-1, K)  # (B·(h+2)·(w+2))×K
    at = (b * (h2 + 1) + i) * (w2 + 1) + j  # each cell's upper-left corner in ``padded``
    corners = torch.stack([padded.index_select(0, at + step) for step in (0, 1, w2 + 1, w2 + 2)])
    upper = corners.amax(0)  # N×K
    count = (upper >= corners.amin(0).amax(1, keepdim=True)).sum(1)  # classes that can win
    # cells in order of their candidate count: each group is a slice
    count, order = count.sort(stable=True)
    corners, upper, cell = corners[:, order], upper[order], ((b * h2 + i) * w2 + j)[order]
    ends = torch.searchsorted(count, torch.tensor(CANDIDATE_GROUPS, device=count.device), right=True).tolist()
    starts = [0, *ends[:-1]]
    groups = [(lo, hi, t) for lo, hi, t in zip(starts, ends, CANDIDATE_GROUPS, strict=True)]
    groups.append((ends[-1], len(count), int(count[-1])))  # the rest, at the most any needs
    if sum((hi - lo) * t for lo, hi, t in groups) > budget:
        return False
    weights = _block_weights(sy, sx, low.dtype, low.device)
    # rows written as 8-byte words where they can be (index_put costs per element)
    rows, words = blocks, blocks.dtype == torch.uint8 and (sy * sx) % 8 == 0
    if words:
        rows = blocks.view(torch.int64)
    for lo, hi, t in groups:
        if hi > lo:
            labels = _blend(corners[:, lo:hi], upper[lo:hi], t, weights).to(blocks.dtype).contiguous()
            rows[cell[lo:hi]] = labels.view(-1).view(torch.int64).view(hi - lo, -1) if words else labels
    return True


def _blend(corners: torch.Tensor, upper: torch.Tensor, t: int, weights: torch.Tensor) -> torch.Tensor:
    """N×P labels of N cells (4×N×K corner scores) at the P pixels of a block, among each
    cell's t classes of largest upper bound."""
    # candidates in ascending class order, so that ties go to the first class, as in argmax
    classes = upper.topk(t, dim=1, sorted=False).indices.sort(1).values  # N×t
    picked = corners.gather(2, classes.expand(4, -1, -1))  # 4×N×t
    scores = (weights @ picked.permute(0, 2, 1).reshape(4, -1)).view(weights.shape[0], t, -1)  # P×t×N
    return _argmax_classes(scores, classes.t()).t()


def _block_weights(sy: int, sx: int, dtype, device) -> torch.Tensor:
    """(sy·sx)×4 bilinear weights of a block's pixels on its cell's corners (upper-left,
    upper-right, lower-left, lower-right): pixel k of a block lies (k + 0.5)/s from the
    upper-left centre."""
    fy = (torch.arange(sy, dtype=dtype, device=device) + 0.5) / sy
    fx = (torch.arange(sx, dtype=dtype, device=device) + 0.5) / sx
    return torch.stack([torch.outer(1 - fy, 1 - fx), torch.outer(1 - fy, fx),
                        torch.outer(fy, 1 - fx), torch.outer(fy, fx)]).reshape(4, -1).t().contiguous()


def _argmax_classes(scores: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """P×N labels: ``classes[k, n]`` for the k maximising ``scores[p, k, n]`` (the first
    maximum, as torch.argmax) over the K planes of P×K×N scores.

    A running maximum over the planes, each step a contiguous, branch-free pass
    (labels ← labels·¬gt + class·gt): faster than torch.argmax over a contiguous last axis
    (it mispredicts at the class boundaries these blocks hold) and than ``masked_fill_`` for
    the update."""
    dtype = torch.uint8 if int(classes.max()) < 256 else torch.int64
    classes = classes.to(dtype)
    best = scores[:, 0].clone()
    labels = classes[0].expand_as(best).clone()
    for k in range(1, scores.shape[1]):
        plane = scores[:, k]
        above = plane > best
        labels.mul_(~above).add_(above * classes[k])
        torch.maximum(best, plane, out=best)
    return labels


def _pad_replicate(t: torch.Tensor) -> torch.Tensor:
    """``t`` with dims 1 and 2 padded by one, replicating the edge (any dtype and layout)."""
    t = torch.cat([t[:, :1], t, t[:, -1:]], 1)
    return torch.cat([t[:, :, :1], t, t[:, :, -1:]], 2)
