"""Evaluation: predictions against labels and flow (mIoU, TC, flicker, mVC), keyframe scoring."""
