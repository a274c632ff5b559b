"""etc: temporally consistent per-frame semantic video segmentation (ETC, ECCV 2020)."""

__version__ = "0.1.0"
