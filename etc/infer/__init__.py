"""Inference: per-frame prediction, keyframe streams, the fused upsample-argmax."""
