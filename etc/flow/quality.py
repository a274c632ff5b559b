"""``etc flow-quality``: how far a flow store is from a reference store (the synthetic set's
exact flow), so that a user can judge a flow before training on it or measuring with it.

Per pair and pooled over every pair both stores hold, both directions:
- end-point error (EPE, pixels at the reference's resolution) over the pixels the reference
  marks visible, and the share of those pixels off by more than 1 and 3 pixels;
- occlusion agreement: IoU of the two occlusion masks and the share of pixels where they agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from etc.core.errors import EtcError

COLUMNS = ["clip", "a", "b", "direction", "epe", "over_1px", "over_3px", "occ_iou", "occ_agree", "visible"]


def _pairs(store) -> list[tuple[str, int, int]]:
    h5 = store._file()
    out = []
    for clip in sorted(h5):
        for key in sorted(h5[clip]):
            if h5[clip][key].attrs.get("complete", True):
                a, b = (int(v) for v in key.split("_"))
                out.append((clip, a, b))
    return out


def flow_quality(flow: str | Path, reference: str | Path, out: str | Path | None = None,
                 csv: str | Path | None = None) -> dict:
    """Compare every pair of ``flow`` with ``reference``; write the summary JSON (and per-pair
    CSV) when asked; return the summary."""
    import pandas as pd
    import torch

    from etc.core.io import atomic_path, write_json
    from etc.flow.store import FlowStore

    est, ref = FlowStore(flow), FlowStore(reference)
    if tuple(est.image_size) != tuple(ref.image_size):
        raise EtcError(f"{flow} holds flow of {est.image_size} frames, {reference} of {ref.image_size}: "
                       f"they were computed for different data")
    pairs = [p for p in _pairs(est) if ref.has(*p)]
    if not pairs:
        raise EtcError(f"{flow} and {reference} share no frame pair: compute both for the same split "
                       f"and pairs (etc precompute-flow --pairs)")
    size = ref.stored_size
    rows = []
    sums = np.zeros(6)  # epe sum, >1, >3, visible count, occ intersection, occ union
    agree = total = 0
    with torch.no_grad():
        for clip, a, b in pairs:
            for d, (s, t) in (("fw", (a, b)), ("bw", (b, a))):
                f_est, o_est = est.read(clip, s, t, size)
                f_ref, o_ref = ref.read(clip, s, t, size)
                vis = ~o_ref
                err = (f_est - f_ref).norm(dim=0)[vis]
                inter, union = int((o_est & o_ref).sum()), int((o_est | o_ref).sum())
                same = int((o_est == o_ref).sum())
                n = int(vis.sum())
                rows.append({"clip": clip, "a": s, "b": t, "direction": d,
                             "epe": float(err.mean()) if n else float("nan"),
                             "over_1px": float((err > 1).float().mean()) if n else float("nan"),
                             "over_3px": float((err > 3).float().mean()) if n else float("nan"),
                             "occ_iou": inter / union if union else 1.0, "occ_agree": same / o_ref.numel(),
                             "visible": n})
                sums += [float(err.sum()), int((err > 1).sum()), int((err > 3).sum()), n, inter, union]
                agree, total = agree + same, total + o_ref.numel()
    summary = {
        "flow": str(flow), "reference": str(reference), "estimator": est.attrs.get("estimator"),
        "reference_estimator": ref.attrs.get("estimator"), "pairs": len(pairs), "size": list(size),
        "epe": sums[0] / max(sums[3], 1), "over_1px": sums[1] / max(sums[3], 1), "over_3px": sums[2] / max(sums[3], 1),
        "occ_iou": sums[4] / sums[5] if sums[5] else 1.0, "occ_agree": agree / max(total, 1),
    }
    if out:
        write_json(out, summary)
    if csv:
        with atomic_path(csv) as tmp:
            pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp, index=False)
    return summary
